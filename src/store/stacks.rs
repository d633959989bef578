//! Stacks, their resources and events, as the stack engine records them.

use super::{Store, StoreResult};
use crate::model::{Stack, StackEvent, StackResource};

#[allow(unused_variables)]
impl Store {
    pub fn get_stack(&self, name: &str) -> StoreResult<Option<Stack>> {
        todo!()
    }
    /// Creates or replaces the stack row.
    pub fn put_stack(&self, stack: &Stack) -> StoreResult<()> {
        todo!()
    }
    /// Deletes the stack row, its resources and its events. False if absent.
    pub fn delete_stack(&self, name: &str) -> StoreResult<bool> {
        todo!()
    }
    pub fn list_stack_resources(&self, stack: &str) -> StoreResult<Vec<StackResource>> {
        todo!()
    }
    /// Creates or replaces one resource row.
    pub fn put_stack_resource(&self, resource: &StackResource) -> StoreResult<()> {
        todo!()
    }
    pub fn delete_stack_resource(&self, stack: &str, logical_id: &str) -> StoreResult<bool> {
        todo!()
    }
    pub fn add_stack_event(&self, event: &StackEvent) -> StoreResult<()> {
        todo!()
    }
    /// The most recent `limit` events, oldest first.
    pub fn list_stack_events(&self, stack: &str, limit: usize) -> StoreResult<Vec<StackEvent>> {
        todo!()
    }
}
