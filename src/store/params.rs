//! The parameter store ("SSM Parameter Store"). SecureString values are
//! sealed with the keyring before they reach SQLite: the database never holds
//! a plaintext secret.

use super::{Store, StoreResult};
use crate::model::{Parameter, ParameterType};

#[allow(unused_variables)]
impl Store {
    /// `PutParameter`. Without `overwrite`, an existing name is `AlreadyExists`.
    /// Returns the new version.
    pub fn put_parameter(
        &self,
        name: &str,
        value: &str,
        kind: ParameterType,
        overwrite: bool,
    ) -> StoreResult<i64> {
        todo!()
    }
    /// `GetParameter [--with-decryption]`. Without decryption a SecureString's
    /// value is returned as the literal `"(encrypted)"`.
    pub fn get_parameter(
        &self,
        name: &str,
        with_decryption: bool,
    ) -> StoreResult<Option<Parameter>> {
        todo!()
    }
    /// `DeleteParameter`. False if absent.
    pub fn delete_parameter(&self, name: &str) -> StoreResult<bool> {
        todo!()
    }
    /// `DescribeParameters`: values are not included (`value` is empty).
    pub fn list_parameters(&self) -> StoreResult<Vec<Parameter>> {
        todo!()
    }
}
