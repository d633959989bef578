//! `jitpilot demo`: the walkthrough played step by step for workshops, each
//! step with a short narration of what happens and which AWS API it is.

use super::action::Action;

/// One step of the guided walkthrough.
#[derive(Debug, Clone, Copy)]
pub struct DemoStep {
    pub title: &'static str,
    /// What happens, in two or three sentences.
    pub narration: &'static str,
    /// The AWS API or CLI call the step stands for.
    pub aws: &'static str,
    /// What the step does when played.
    pub action: Option<DemoAction>,
}

/// What playing a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoAction {
    Deploy,
    Init,
    /// Step the sample's device (the first row) once.
    StepFirstDevice,
    Cleanup,
    Teardown,
}

impl DemoAction {
    /// The UI action that plays it (cleanup and teardown skip the confirm:
    /// the narration already said what they do).
    pub fn action(self) -> Action {
        match self {
            DemoAction::Deploy => Action::Deploy,
            DemoAction::Init => Action::Init,
            DemoAction::StepFirstDevice => Action::StepSelected,
            DemoAction::Cleanup | DemoAction::Teardown => Action::Confirm,
        }
    }
}

/// The walkthrough, in the blog post's order.
pub const STEPS: [DemoStep; 9] = [
    DemoStep {
        title: "Welcome",
        narration: "This is the AWS sample 'Secure and Consistent IoT Device On-boarding with JITP and Certificate Rotation', played on jitpilot's embedded local cloud. Each step runs for real: press Space to play it.",
        aws: "",
        action: None,
    },
    DemoStep {
        title: "1. Deploy the stack",
        narration: "The cloud side is a CloudFormation stack: three IoT topic rules, the rotation function (Lambda), the device table (DynamoDB, hash key SerialNumber), two IoT policies and their roles. Watch the Stack pane.",
        aws: "aws cloudformation deploy --template-file cfn/cert-rotation.json --stack-name CertRotation",
        action: Some(DemoAction::Deploy),
    },
    DemoStep {
        title: "2. Init: CAs, JITP template, whitelist",
        narration: "A Vendor CA is registered with a verification certificate (CN = registration code) and auto-registration with a JITP template. A Manufacturer CA is registered and its key stored encrypted as cr-ca-key-<id>. The serial is whitelisted (CR_WHITELISTED) and the factory issues its vendor cert.",
        aws: "aws iot get-registration-code; aws iot register-ca-certificate --allow-auto-registration --registration-config templateBody=...; aws ssm put-parameter --type SecureString",
        action: Some(DemoAction::Init),
    },
    DemoStep {
        title: "3a. JITP",
        narration: "The device connects with its vendor cert. AWS IoT does not know the cert: it refuses the connection, registers it (PENDING_ACTIVATION), applies the template (thing, ACTIVE, in-progress policy) and publishes $aws/events/certificates/registered/<caId>. rule_jitp invokes the Lambda: the serial is whitelisted, so CR_THING_CREATED. The device retries and connects.",
        aws: "mqtt_client.py --jitp (JITP: aws iot register-certificate + template, done by AWS IoT)",
        action: Some(DemoAction::StepFirstDevice),
    },
    DemoStep {
        title: "3b. Create the manufacturer cert",
        narration: "The device makes a NEW key and publishes its CSR to /cert-rotation/create-man-cert/<serial>/rqst. The Lambda signs it with the Manufacturer CA key from the parameter store, registers the cert ACTIVE, attaches the rotation-complete policy and the thing, writes CR_MAN_CERT_CREATED and answers on .../rspn.",
        aws: "mqtt_client.py --create_cert (Lambda: ssm get-parameter --with-decryption, iot register-certificate, attach-policy, attach-thing-principal, dynamodb update-item)",
        action: Some(DemoAction::StepFirstDevice),
    },
    DemoStep {
        title: "3b'. The sample's key reuse",
        narration: "The sample's own device makes its CSR from the vendor key: whoever copied the factory key would hold the new identity too. The stack parameter CsrKeyReuse decides: refuse (default) answers {\"error\": {\"code\": \"csr_reuses_vendor_key\"}} on .../rspn, shown red; warn signs it, as the sample does, and marks the event INSECURE.",
        aws: "jitpilot deploy --parameter-overrides CsrKeyReuse=warn (aws cloudformation deploy --parameter-overrides)",
        action: None,
    },
    DemoStep {
        title: "3c. Acknowledge it",
        narration: "The device connects with the new cert and publishes the cert_id to /cert-rotation/ack-man-cert/<serial>/rqst. The Lambda detaches the vendor cert, sets it INACTIVE, deletes it and writes CR_CERT_ROTATION_COMPLETED. The vendor cert can no longer connect. Open the device (Enter) to see its sequence diagram.",
        aws: "mqtt_client.py --ack_cert (Lambda: iot detach-thing-principal, update-certificate --new-status INACTIVE, delete-certificate)",
        action: Some(DemoAction::StepFirstDevice),
    },
    DemoStep {
        title: "Cleanup",
        narration: "Everything init and the devices created goes: things, certificates, CAs, the CA key parameter, the table rows and the device folders.",
        aws: "certs_etc.py --delete",
        action: Some(DemoAction::Cleanup),
    },
    DemoStep {
        title: "Teardown",
        narration: "Finally the stack is deleted, resource by resource, in reverse dependency order. That is the whole walkthrough.",
        aws: "delete_cf.bash (aws cloudformation delete-stack)",
        action: Some(DemoAction::Teardown),
    },
];

/// Where the guided walkthrough is.
#[derive(Debug, Default, Clone)]
pub struct Demo {
    /// Index into [`STEPS`] of the step shown (and played on the next Space).
    pub step: usize,
}

impl Demo {
    /// The step shown.
    pub fn current(&self) -> &'static DemoStep {
        &STEPS[self.step.min(STEPS.len() - 1)]
    }

    /// True after the last step was played.
    pub fn finished(&self) -> bool {
        self.step >= STEPS.len()
    }
}
