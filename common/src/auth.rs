//! Token authentication (frp `pkg/auth/token.go`, `pkg/util/util/util.go` `GetAuthKey`).
//!
//! `privilege_key = hex(md5(token ‖ decimal(timestamp)))`; the server recomputes it and compares
//! in constant time. frp does no freshness check on the timestamp, and neither do we: a Go frpc
//! with a skewed clock must still log in.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// frp's error text when the token does not match (`pkg/auth/token.go`).
pub const TOKEN_MISMATCH: &str = "token in login doesn't match token from configuration";

/// `GetAuthKey(token, timestamp)`.
pub fn auth_key(token: &str, timestamp: i64) -> String {
    let mut h = Md5::new();
    h.update(token.as_bytes());
    h.update(timestamp.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Checks a `privilege_key` in constant time.
pub fn verify_auth_key(token: &str, timestamp: i64, privilege_key: &str) -> bool {
    let expected = auth_key(token, timestamp);
    expected.as_bytes().ct_eq(privilege_key.as_bytes()).into()
}

pub use crate::clock::unix_now;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        assert_eq!(
            auth_key("12345678", 1_700_000_000),
            "3d8aac6cc09d79da303be74c311e5808"
        );
        assert_eq!(
            auth_key("", 1_700_000_000),
            "24920decf83f6960b80f737a28eeafc1"
        );
    }

    #[test]
    fn verify() {
        let k = auth_key("t", 5);
        assert!(verify_auth_key("t", 5, &k));
        assert!(!verify_auth_key("t", 6, &k));
        assert!(!verify_auth_key("u", 5, &k));
        assert!(!verify_auth_key("t", 5, ""));
    }
}
