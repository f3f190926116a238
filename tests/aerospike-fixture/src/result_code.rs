//! The server's result codes (`as/include/base/proto.h`), named once so every
//! module answers with the same numbers the real server uses.

/// A result code as it travels in byte 13 of a reply header.
pub(crate) type ResultCode = u8;

pub(crate) const OK: ResultCode = 0;
pub(crate) const KEY_NOT_FOUND: ResultCode = 2;
pub(crate) const GENERATION_ERROR: ResultCode = 3;
pub(crate) const PARAMETER_ERROR: ResultCode = 4;
pub(crate) const KEY_EXISTS: ResultCode = 5;
pub(crate) const BIN_TYPE_ERROR: ResultCode = 12;
pub(crate) const RECORD_TOO_BIG: ResultCode = 13;
pub(crate) const NAMESPACE_NOT_FOUND: ResultCode = 20;
pub(crate) const BIN_NAME_TOO_LONG: ResultCode = 21;
pub(crate) const FAIL_FORBIDDEN: ResultCode = 22;
pub(crate) const ELEMENT_NOT_FOUND: ResultCode = 23;
pub(crate) const ELEMENT_EXISTS: ResultCode = 24;
pub(crate) const OP_NOT_APPLICABLE: ResultCode = 26;

// Security (admin protocol) codes.
pub(crate) const SECURITY_NOT_SUPPORTED: ResultCode = 51;
pub(crate) const INVALID_COMMAND: ResultCode = 54;
pub(crate) const INVALID_USER: ResultCode = 60;
pub(crate) const INVALID_CREDENTIAL: ResultCode = 65;
pub(crate) const NOT_AUTHENTICATED: ResultCode = 80;
