//! CloudFormation and S3 of the local cloud's AWS API, driven by clients
//! nobody here wrote: the aws CLI (`s3 mb/cp/rb --force`, a multipart
//! upload, `cloudformation deploy` twice with `--parameter-overrides`,
//! `describe-stacks`/`-events`, `delete-stack`) and boto3 (create_stack
//! from a TemplateURL + waiters), against a started `jitpilot serve`.

mod support;

use std::path::Path;
use support::api::{aws, delete_stack, env_keys, json, ok, python};
use support::endpoint::serve;

#[test]
fn aws_s3_mb_cp_multipart_ls_and_rb_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let _server = serve(&data_dir);
    let keys = env_keys(&data_dir);
    let home = dir.path();

    ok(
        aws(&keys, home, &["s3", "mb", "s3://jitpilot-test"]),
        "s3 mb",
    );
    // 9 MiB: over the CLI's 8 MB threshold, so a multipart upload.
    let big: Vec<u8> = (0..9 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &big).expect("write");
    ok(
        aws(
            &keys,
            home,
            &[
                "s3",
                "cp",
                file.to_str().unwrap(),
                "s3://jitpilot-test/dir/big.bin",
            ],
        ),
        "s3 cp (multipart)",
    );
    let head = ok(
        aws(
            &keys,
            home,
            &[
                "s3api",
                "head-object",
                "--bucket",
                "jitpilot-test",
                "--key",
                "dir/big.bin",
            ],
        ),
        "head-object",
    );
    let head = json(&head);
    assert_eq!(head["ContentLength"], big.len() as u64);
    assert!(
        head["ETag"].as_str().unwrap().ends_with("-2\""),
        "multipart ETag: {head}"
    );
    let back = dir.path().join("back.bin");
    ok(
        aws(
            &keys,
            home,
            &[
                "s3",
                "cp",
                "s3://jitpilot-test/dir/big.bin",
                back.to_str().unwrap(),
            ],
        ),
        "s3 cp back",
    );
    assert!(
        std::fs::read(&back).expect("read back") == big,
        "the object round-trips"
    );
    let listing = ok(
        aws(&keys, home, &["s3", "ls", "s3://jitpilot-test/dir/"]),
        "s3 ls",
    );
    assert!(listing.contains("big.bin"), "{listing}");

    let refused = aws(&keys, home, &["s3", "rb", "s3://jitpilot-test"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("BucketNotEmpty"));
    ok(
        aws(&keys, home, &["s3", "rb", "s3://jitpilot-test", "--force"]),
        "s3 rb --force",
    );
    let gone = aws(
        &keys,
        home,
        &["s3api", "head-bucket", "--bucket", "jitpilot-test"],
    );
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("404"),
        "head-bucket after rb"
    );
}

#[test]
fn aws_cloudformation_deploy_with_overrides_no_changes_events_and_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let _server = serve(&data_dir);
    let keys = env_keys(&data_dir);
    let home = dir.path();
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("cfn/cert-rotation.json");
    let template = template.to_str().unwrap();
    let deploy = |extra: &[&str]| {
        let mut args = vec![
            "cloudformation",
            "deploy",
            "--template-file",
            template,
            "--stack-name",
            "CertRotation",
            "--capabilities",
            "CAPABILITY_NAMED_IAM",
        ];
        args.extend_from_slice(extra);
        aws(&keys, home, &args)
    };

    let first = ok(
        deploy(&["--parameter-overrides", "CodeKey=first/bootstrap.zip"]),
        "deploy",
    );
    assert!(
        first.contains("Successfully created/updated stack"),
        "{first}"
    );
    let stacks = json(&ok(
        aws(
            &keys,
            home,
            &[
                "cloudformation",
                "describe-stacks",
                "--stack-name",
                "CertRotation",
            ],
        ),
        "describe-stacks",
    ));
    let stack = &stacks["Stacks"][0];
    assert_eq!(stack["StackStatus"], "CREATE_COMPLETE");
    let code_key = stack["Parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["ParameterKey"] == "CodeKey")
        .expect("CodeKey");
    assert_eq!(code_key["ParameterValue"], "first/bootstrap.zip");

    // The same again: the change set without changes is what the CLI calls
    // "No changes to deploy" (aws CLI v1 then exits 255 by default, v2 0),
    // and with --no-fail-on-empty-changeset it succeeds.
    let again = deploy(&[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(text.contains("No changes to deploy"), "{text}");
    // The CLI names change sets by the second, and the empty one stays (as
    // on AWS): delete it, or a deploy within the same second collides.
    let sets = json(&ok(
        aws(
            &keys,
            home,
            &[
                "cloudformation",
                "list-change-sets",
                "--stack-name",
                "CertRotation",
            ],
        ),
        "list-change-sets",
    ));
    for set in sets["Summaries"].as_array().into_iter().flatten() {
        let name = set["ChangeSetName"].as_str().expect("ChangeSetName");
        ok(
            aws(
                &keys,
                home,
                &[
                    "cloudformation",
                    "delete-change-set",
                    "--stack-name",
                    "CertRotation",
                    "--change-set-name",
                    name,
                ],
            ),
            "delete-change-set",
        );
    }
    ok(
        deploy(&["--no-fail-on-empty-changeset"]),
        "deploy without changes",
    );

    let events = json(&ok(
        aws(
            &keys,
            home,
            &[
                "cloudformation",
                "describe-stack-events",
                "--stack-name",
                "CertRotation",
            ],
        ),
        "describe-stack-events",
    ));
    let events = events["StackEvents"].as_array().unwrap();
    assert!(events
        .iter()
        .any(|e| e["LogicalResourceId"] == "JitpRule" && e["ResourceStatus"] == "CREATE_COMPLETE"));

    delete_stack(&keys, home, "CertRotation");
    let gone = aws(
        &keys,
        home,
        &[
            "cloudformation",
            "describe-stacks",
            "--stack-name",
            "CertRotation",
        ],
    );
    assert!(String::from_utf8_lossy(&gone.stderr).contains("does not exist"));
}

#[test]
fn boto3_create_stack_from_a_template_url_with_waiters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let _server = serve(&data_dir);
    let keys = env_keys(&data_dir);
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("cfn/cert-rotation.json");
    let out = python(
        "stack_boto3.py",
        &keys,
        &[template.to_str().unwrap(), "ViaBoto3"],
    );
    let seen = json(String::from_utf8_lossy(&out.stdout).trim());
    assert_eq!(seen["status"], "CREATE_COMPLETE", "{seen}");
    assert!(seen["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "JitpRule"));
    assert!(seen["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|o| o == "JitpProvisioningRoleArn"));
    assert_eq!(seen["templateIsDict"], true);
    assert_eq!(seen["noUpdates"], "No updates are to be performed.");
    assert_eq!(seen["gone"], true);
}
