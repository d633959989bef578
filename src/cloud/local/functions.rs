//! Built-in functions: what a rule's Lambda action invokes on the local cloud.
//!
//! A stack's `AWS::Lambda::Function` names its built-in handler in its
//! `Metadata` (`"jitpilot:builtin": "cert-rotation"`); the rules engine
//! resolves the action's function ARN → function name → handler → this
//! registry, and invokes it in-process with the rule's SQL output as event.

use crate::rotation::Publisher;
use std::collections::HashMap;
use std::sync::Arc;

/// A function compiled into jitpilot.
#[async_trait::async_trait]
pub trait BuiltinFunction: Send + Sync {
    /// Handles one event (the rule's SQL output). `publisher` publishes as
    /// the cloud on the endpoint that invoked the function. Errors are
    /// reported as the function's failure (logged, like a Lambda error).
    async fn invoke(
        &self,
        event: serde_json::Value,
        publisher: Arc<dyn Publisher>,
    ) -> Result<serde_json::Value, String>;
}

/// Built-in handlers by name.
#[derive(Clone, Default)]
pub struct FunctionRegistry {
    handlers: HashMap<String, Arc<dyn BuiltinFunction>>,
}

impl FunctionRegistry {
    /// An empty registry.
    pub fn new() -> FunctionRegistry {
        FunctionRegistry::default()
    }

    /// Registers `function` under `handler`.
    pub fn register(&mut self, handler: &str, function: Arc<dyn BuiltinFunction>) {
        self.handlers.insert(handler.to_string(), function);
    }

    /// The function registered under `handler`.
    pub fn get(&self, handler: &str) -> Option<Arc<dyn BuiltinFunction>> {
        self.handlers.get(handler).cloned()
    }
}
