//! The device's onboarding as a pure state machine: no sockets, no files, no
//! clocks. The shell ([`crate::shell`]) feeds it [`Input`]s (connection
//! results, messages, timers) and carries out the [`Command`]s it returns
//! (connect, subscribe, publish, store, start a timer), in order.
//!
//! Being pure, every path — JITP refusal, lost responses, a forged cert, a
//! crash between any two writes — is a plain unit test (`tests.rs`).
//!
//! The steps (DESIGN §1):
//! - **3a** connect with the vendor identity; the first connect is refused
//!   while the cloud provisions the cert, so retry with backoff until CONNACK.
//! - **3b** on that connection, subscribe to `.../create-man-cert/<serial>/rspn`,
//!   store a new key, publish `{"csr"}` to `.../rqst`, verify and store the cert.
//! - **3c** reconnect with the manufacturer identity, subscribe to
//!   `.../ack-man-cert/<serial>/rspn`, publish `{"cert_id"}`, receive it back.
//!
//! A refusal answered on the response topic (`{"error": {code, message,
//! retryable}}`) ends the run unless it is retryable.

use crate::backoff::{loss_draws, Jitter, RetryPolicy};
use crate::firmware::{self, FirmwareError};
use crate::report::{Progress, Step};
use crate::topics;
use std::time::Duration;

#[cfg(test)]
mod tests;
mod vocabulary;

pub use vocabulary::{Command, Credential, DeviceFailure, Goal, Identity, Input, Stored};

/// Where the machine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Connecting,
    Backoff,
    Subscribing,
    Awaiting,
    Finished,
}

/// One device's onboarding state. Small on purpose: thousands live at once.
#[derive(Debug)]
pub struct DeviceMachine {
    serial: String,
    goal: Goal,
    policy: RetryPolicy,
    /// Fraction of responses to pretend never arrived.
    loss: f64,
    /// Responses still to drop, exactly, before any reaches the device
    /// ("drop the next response" fault).
    drop_responses: u32,
    response_timeout: Duration,
    /// Backoff jitter.
    rng: Jitter,
    /// Simulated-loss decisions, a stream of their own (see [`loss_draws`]).
    loss_rng: Jitter,
    state: State,
    step: Step,
    /// Attempts in the current step: connects in 3a, requests in 3b/3c.
    attempts: u32,
    /// Lost or refused connections in 3b/3c (3a counts them as attempts).
    connect_failures: u32,
    key: Option<String>,
    csr: Option<String>,
    cert_id: Option<String>,
    manufacturer_ca: Option<String>,
    /// The request in flight, kept so a retry resends it byte for byte.
    request: Option<Vec<u8>>,
}

/// Settings of one machine.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub serial: String,
    pub goal: Goal,
    pub policy: RetryPolicy,
    pub loss: f64,
    /// Drop exactly the next N responses (then `loss` applies again).
    pub drop_responses: u32,
    pub response_timeout: Duration,
    /// Seed of the jitter and loss draws (fixed in tests, random otherwise).
    pub seed: u64,
}

impl DeviceMachine {
    /// A machine that has not started yet.
    pub fn new(config: MachineConfig) -> DeviceMachine {
        DeviceMachine {
            serial: config.serial,
            goal: config.goal,
            policy: config.policy,
            loss: config.loss.clamp(0.0, 1.0),
            drop_responses: config.drop_responses,
            response_timeout: config.response_timeout,
            rng: Jitter::new(config.seed),
            loss_rng: loss_draws(config.seed),
            state: State::Idle,
            step: Step::Jitp,
            attempts: 0,
            connect_failures: 0,
            key: None,
            csr: None,
            cert_id: None,
            manufacturer_ca: None,
            request: None,
        }
    }

    /// True once the machine emitted `Done` or `Failed`.
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The step in progress (or last run).
    pub fn step(&self) -> Step {
        self.step
    }

    /// Feeds one input; returns the commands to carry out, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Command> {
        let mut out = Vec::new();
        if self.state == State::Finished {
            return out;
        }
        match input {
            Input::Start(stored) if self.state == State::Idle => self.start(stored, &mut out),
            Input::Connected if self.state == State::Connecting => self.connected(&mut out),
            Input::ConnectFailed { reason } if self.state == State::Connecting => {
                self.connection_lost(reason, &mut out)
            }
            Input::Closed { reason }
                if matches!(self.state, State::Subscribing | State::Awaiting) =>
            {
                out.push(Command::CancelTimer);
                self.connection_lost(reason, &mut out)
            }
            Input::Subscribed if self.state == State::Subscribing => self.subscribed(&mut out),
            Input::Message { topic, payload } if self.state == State::Awaiting => {
                self.message(&topic, &payload, &mut out)
            }
            Input::TimerFired if self.state == State::Backoff => self.connect(&mut out),
            Input::TimerFired if self.state == State::Awaiting => self.response_timed_out(&mut out),
            // Anything else is stale (a late timer, a message after the step
            // moved on) and changes nothing.
            _ => {}
        }
        out
    }

    fn start(&mut self, stored: Stored, out: &mut Vec<Command>) {
        self.manufacturer_ca = stored.manufacturer_ca;
        self.key = stored.manufacturer_key;
        self.csr = stored.csr;
        if let Some(cert) = stored.manufacturer_cert {
            // A cert on disk is trusted only if it still passes every check:
            // a half-written or swapped file must not be used to connect.
            let Some(key) = self.key.as_deref() else {
                return self.fail(DeviceFailure::NotReady(
                    "manufacturer.cert.pem exists but manufacturer.key.pem does not; delete manufacturer.cert.pem to request a new cert".into(),
                ), out);
            };
            let Some(ca) = self.manufacturer_ca.as_deref() else {
                return self.fail(DeviceFailure::NotReady(
                    "manufacturer-ca.pem is missing from the credential folder; run `jitpilot init` to write it".into(),
                ), out);
            };
            match firmware::verify_manufacturer_cert(&self.serial, &cert, None, key, ca) {
                Ok(id) => self.cert_id = Some(id),
                Err(source) => {
                    return self.fail(
                        DeviceFailure::Firmware {
                            step: Step::CreateCert,
                            source,
                        },
                        out,
                    )
                }
            }
        }
        let acked = self.cert_id.is_some() && stored.acked_cert_id == self.cert_id;
        let have_cert = self.cert_id.is_some();
        match self.goal {
            Goal::Jitp => self.begin(Step::Jitp, out),
            Goal::CreateCert if have_cert => {
                self.skip(Step::CreateCert, out);
                self.finish(out);
            }
            Goal::CreateCert => self.begin(Step::Jitp, out),
            Goal::AckCert if !have_cert => self.fail(
                DeviceFailure::NotReady(
                    "no manufacturer cert in the credential folder: run the create-cert step first"
                        .into(),
                ),
                out,
            ),
            Goal::AckCert | Goal::Onboard if acked => {
                if self.goal == Goal::Onboard {
                    self.skip(Step::Jitp, out);
                    self.skip(Step::CreateCert, out);
                }
                self.skip(Step::AckCert, out);
                self.finish(out);
            }
            Goal::AckCert => self.begin(Step::AckCert, out),
            Goal::Onboard if have_cert => {
                self.skip(Step::Jitp, out);
                self.skip(Step::CreateCert, out);
                self.begin(Step::AckCert, out);
            }
            Goal::Onboard => self.begin(Step::Jitp, out),
        }
    }

    /// Starts `step` with a fresh connection.
    fn begin(&mut self, step: Step, out: &mut Vec<Command>) {
        self.enter(step, out);
        self.connect(out);
    }

    /// Makes `step` current and announces it.
    fn enter(&mut self, step: Step, out: &mut Vec<Command>) {
        self.step = step;
        self.attempts = 0;
        self.connect_failures = 0;
        self.request = None;
        let message = match step {
            Step::Jitp => "connecting with the vendor cert (JITP)",
            Step::CreateCert => "requesting a manufacturer cert",
            Step::AckCert => "acknowledging the manufacturer cert",
        };
        self.report(Progress::Started, message, out);
    }

    fn identity(&self) -> Identity {
        match self.step {
            Step::Jitp | Step::CreateCert => Identity::Vendor,
            Step::AckCert => Identity::Manufacturer,
        }
    }

    fn connect(&mut self, out: &mut Vec<Command>) {
        if self.step == Step::Jitp {
            self.attempts += 1;
        }
        self.state = State::Connecting;
        out.push(Command::Connect(self.identity()));
    }

    fn connected(&mut self, out: &mut Vec<Command>) {
        if self.step == Step::Jitp {
            self.report(
                Progress::Completed,
                "connected: the vendor cert is provisioned",
                out,
            );
            if self.goal == Goal::Jitp {
                out.push(Command::Disconnect);
                return self.finish(out);
            }
            // 3b runs on the very connection 3a opened.
            self.enter(Step::CreateCert, out);
        }
        let topic = match self.step {
            Step::AckCert => topics::ack_cert_response(&self.serial),
            _ => topics::create_cert_response(&self.serial),
        };
        self.state = State::Subscribing;
        out.push(Command::Subscribe { topic });
    }

    fn connection_lost(&mut self, reason: String, out: &mut Vec<Command>) {
        let failures = if self.step == Step::Jitp {
            self.attempts
        } else {
            self.connect_failures += 1;
            self.connect_failures
        };
        if failures >= self.policy.max_connect_attempts {
            return self.fail(
                DeviceFailure::ConnectRefused {
                    step: self.step,
                    attempts: failures,
                    last: reason,
                },
                out,
            );
        }
        if self.step == Step::Jitp && failures == 1 {
            // JITP refuses the first connect by design, having provisioned
            // the cert before it closes the connection: one retry at once,
            // then backoff (what AWS's guidance for JITP devices allows).
            self.report(
                Progress::Retrying,
                format!("connection refused or lost: {reason} (expected: JITP provisions the cert on the first connect); retrying at once"),
                out,
            );
            return self.connect(out);
        }
        let delay = self.policy.delay(failures, &mut self.rng);
        self.report(
            Progress::Retrying,
            format!(
                "connection refused or lost: {reason}; retrying in {} ms",
                delay.as_millis()
            ),
            out,
        );
        self.state = State::Backoff;
        out.push(Command::StartTimer(delay));
    }

    fn subscribed(&mut self, out: &mut Vec<Command>) {
        if self.request.is_none() {
            let payload = match self.step {
                Step::AckCert => {
                    let cert_id = self.cert_id.clone().unwrap_or_default();
                    serde_json::to_vec(&topics::AckCert { cert_id })
                }
                _ => match self.csr_to_send(out) {
                    Ok(csr) => serde_json::to_vec(&topics::CreateCertRequest { csr }),
                    Err(source) => {
                        let step = self.step;
                        out.push(Command::Disconnect);
                        return self.fail(DeviceFailure::Firmware { step, source }, out);
                    }
                },
            };
            // Serializing two string fields cannot fail; an empty payload
            // would only be refused by the cloud and retried to the bound.
            self.request = Some(payload.unwrap_or_default());
        }
        self.send_request(out);
    }

    /// The CSR to send, creating and storing the key first when there is none.
    fn csr_to_send(&mut self, out: &mut Vec<Command>) -> Result<String, FirmwareError> {
        if let (Some(_), Some(csr)) = (&self.key, &self.csr) {
            return Ok(csr.clone());
        }
        let csr = match &self.key {
            // Crash after the key was stored but before its CSR: keep the key.
            Some(key) => firmware::csr_for_stored_key(&self.serial, key)?,
            None => {
                let fresh = firmware::new_key_and_csr(&self.serial)?;
                // The key is written BEFORE the CSR leaves: if the device dies
                // after sending, the cert that comes back still has its key.
                out.push(Command::Store(Credential::ManufacturerKey(
                    fresh.key_pem.clone(),
                )));
                self.key = Some(fresh.key_pem);
                fresh.csr_pem
            }
        };
        out.push(Command::Store(Credential::Csr(csr.clone())));
        self.csr = Some(csr.clone());
        Ok(csr)
    }

    fn send_request(&mut self, out: &mut Vec<Command>) {
        self.attempts += 1;
        let topic = match self.step {
            Step::AckCert => topics::ack_cert_request(&self.serial),
            _ => topics::create_cert_request(&self.serial),
        };
        let what = if self.step == Step::AckCert {
            "ack"
        } else {
            "CSR"
        };
        self.report(
            Progress::Info,
            format!("published the {what} to {topic}"),
            out,
        );
        out.push(Command::Publish {
            topic,
            payload: self.request.clone().unwrap_or_default(),
        });
        self.state = State::Awaiting;
        out.push(Command::StartTimer(self.request_timeout()));
    }

    /// How long to wait for the answer to the request just sent: the
    /// configured response timeout, doubled on each resend up to four
    /// times it. A busy cloud answers late, not never, and a device that
    /// asks again ever faster only lengthens the queue it waits in (TCP's
    /// and CoAP's retransmission timers back off the same way). With the
    /// default 3 s and 6 requests a step gives up after 57 s of silence.
    fn request_timeout(&self) -> Duration {
        let doublings = self.attempts.saturating_sub(1).min(2);
        self.response_timeout.saturating_mul(1 << doublings)
    }

    fn response_timed_out(&mut self, out: &mut Vec<Command>) {
        if self.attempts >= self.policy.max_request_attempts {
            let failure = DeviceFailure::NoResponse {
                step: self.step,
                attempts: self.attempts,
            };
            out.push(Command::Disconnect);
            return self.fail(failure, out);
        }
        self.report(
            Progress::Retrying,
            format!(
                "no response within {} ms; sending the same request again",
                self.request_timeout().as_millis()
            ),
            out,
        );
        self.send_request(out);
    }

    fn message(&mut self, topic: &str, payload: &[u8], out: &mut Vec<Command>) {
        let expected = match self.step {
            Step::AckCert => topics::ack_cert_response(&self.serial),
            _ => topics::create_cert_response(&self.serial),
        };
        if topic != expected {
            return;
        }
        if self.drop_responses > 0 {
            self.drop_responses -= 1;
            return self.report(
                Progress::Info,
                "dropped the response (fault: drop the next response)",
                out,
            );
        }
        if self.loss > 0.0 && self.loss_rng.next_f64() < self.loss {
            return self.report(Progress::Info, "dropped the response (simulated loss)", out);
        }
        if let Ok(topics::ErrorResponse { error }) = serde_json::from_slice(payload) {
            return self.refused(error, out);
        }
        match self.step {
            Step::AckCert => self.ack_response(payload, out),
            _ => self.create_cert_response(payload, out),
        }
    }

    /// The cloud refused the request. A retryable refusal (e.g.
    /// `jitp_not_done`: the CSR overtook JITP's rule) sends the request
    /// again after a short jittered backoff, not after the whole response
    /// timeout; any other ends the run with the cloud's code and message.
    fn refused(&mut self, error: topics::Refusal, out: &mut Vec<Command>) {
        if error.retryable {
            let delay = self
                .policy
                .delay(self.attempts, &mut self.rng)
                .min(self.request_timeout());
            self.report(
                Progress::Retrying,
                format!(
                    "the cloud answered {}: {}; sending the request again in {} ms",
                    error.code,
                    error.message,
                    delay.as_millis()
                ),
                out,
            );
            // Replaces the response timer: when it fires, the request goes
            // again (an answer arriving meanwhile is still taken).
            out.push(Command::StartTimer(delay));
            return;
        }
        out.push(Command::CancelTimer);
        out.push(Command::Disconnect);
        let step = self.step;
        self.fail(
            DeviceFailure::Refused {
                step,
                code: error.code,
                message: error.message,
            },
            out,
        );
    }

    fn create_cert_response(&mut self, payload: &[u8], out: &mut Vec<Command>) {
        let response: topics::CreateCertResponse = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                // Not our answer's shape: keep waiting; the timer will re-ask.
                return self.report(
                    Progress::Info,
                    format!("ignored a malformed response: {e}"),
                    out,
                );
            }
        };
        let (Some(key), Some(ca)) = (self.key.as_deref(), self.manufacturer_ca.as_deref()) else {
            out.push(Command::Disconnect);
            return self.fail(
                DeviceFailure::NotReady(
                    "manufacturer-ca.pem is missing from the credential folder, so the returned cert cannot be checked; run `jitpilot init` to write it".into(),
                ),
                out,
            );
        };
        let verified = firmware::verify_manufacturer_cert(
            &self.serial,
            &response.pem,
            Some(&response.cert_id),
            key,
            ca,
        );
        out.push(Command::CancelTimer);
        match verified {
            Ok(id) => {
                out.push(Command::Store(Credential::ManufacturerCert(response.pem)));
                self.cert_id = Some(id.clone());
                self.report(
                    Progress::Completed,
                    format!("received and stored manufacturer cert {id}"),
                    out,
                );
                out.push(Command::Disconnect);
                if self.goal == Goal::CreateCert {
                    return self.finish(out);
                }
                self.begin(Step::AckCert, out);
            }
            Err(source) => {
                out.push(Command::Disconnect);
                self.fail(
                    DeviceFailure::Firmware {
                        step: Step::CreateCert,
                        source,
                    },
                    out,
                );
            }
        }
    }

    fn ack_response(&mut self, payload: &[u8], out: &mut Vec<Command>) {
        let response: topics::AckCert = match serde_json::from_slice(payload) {
            Ok(r) => r,
            Err(e) => {
                return self.report(
                    Progress::Info,
                    format!("ignored a malformed response: {e}"),
                    out,
                );
            }
        };
        let Some(cert_id) = self.cert_id.clone() else {
            return;
        };
        if response.cert_id != cert_id {
            return self.report(
                Progress::Info,
                format!(
                    "ignored an ack response for another cert ({})",
                    response.cert_id
                ),
                out,
            );
        }
        out.push(Command::CancelTimer);
        out.push(Command::Store(Credential::AckDone(cert_id)));
        out.push(Command::Disconnect);
        self.report(
            Progress::Completed,
            "rotation complete: the vendor cert is retired",
            out,
        );
        self.finish(out);
    }

    fn skip(&mut self, step: Step, out: &mut Vec<Command>) {
        self.step = step;
        self.attempts = 0;
        self.report(
            Progress::Skipped,
            "already done (found in the credential folder)",
            out,
        );
    }

    fn finish(&mut self, out: &mut Vec<Command>) {
        self.state = State::Finished;
        out.push(Command::Done {
            manufacturer_cert_id: self.cert_id.clone(),
        });
    }

    fn fail(&mut self, failure: DeviceFailure, out: &mut Vec<Command>) {
        self.report(Progress::Failed, failure.to_string(), out);
        self.state = State::Finished;
        out.push(Command::Failed(failure));
    }

    fn report(&self, state: Progress, message: impl Into<String>, out: &mut Vec<Command>) {
        out.push(Command::Report {
            step: self.step,
            state,
            attempt: self.attempts,
            message: message.into(),
        });
    }
}
