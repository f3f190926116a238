//! The security protocol (proto type 2): LOGIN with the bcrypt hash every
//! client sends instead of the password, and AUTHENTICATE with the session
//! token a login returned. With no users configured the fixture acts like
//! Community Edition, which answers every security message "not supported".

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::result_code::{
    INVALID_COMMAND, INVALID_CREDENTIAL, INVALID_USER, OK, ResultCode, SECURITY_NOT_SUPPORTED,
};

pub(crate) const PROTO_TYPE_SECURITY: u8 = 2;

const HEADER_SIZE: usize = 16;

// Commands.
const AUTHENTICATE: u8 = 0;
const LOGIN: u8 = 20;

// Field ids.
const USER: u8 = 0;
const CREDENTIAL: u8 = 3;
const SESSION_TOKEN: u8 = 5;
const SESSION_TTL: u8 = 6;

/// The server's default session TTL, in seconds.
const SESSION_TTL_SECS: u32 = 24 * 3600;

/// Clients hash passwords with bcrypt, cost 10, and one fixed salt:
/// `7EqJtq98hPqEX7fNZaFWoO` in bcrypt's base64, these 16 bytes decoded.
const PASSWORD_SALT: [u8; 16] = [
    244, 107, 11, 190, 207, 254, 141, 27, 6, 103, 216, 79, 109, 193, 216, 169,
];
const PASSWORD_COST: u32 = 10;

pub(crate) struct Security {
    /// User name to the credential (password hash) its client sends.
    credentials: HashMap<String, String>,
    /// Issued session tokens and their users.
    sessions: Mutex<HashMap<Vec<u8>, String>>,
    issued: AtomicU64,
}

impl Security {
    /// Hashes each password once, here: bcrypt is slow by design.
    pub(crate) fn new(users: &[(String, String)]) -> io::Result<Self> {
        let credentials = users
            .iter()
            .map(|(user, password)| {
                bcrypt::hash_with_salt(password, PASSWORD_COST, PASSWORD_SALT)
                    .map(|hash| (user.clone(), hash.format_for_version(bcrypt::Version::TwoA)))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
            })
            .collect::<io::Result<_>>()?;
        Ok(Self {
            credentials,
            sessions: Mutex::new(HashMap::new()),
            issued: AtomicU64::new(0),
        })
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.credentials.is_empty()
    }

    /// The reply frame for a security request body, and whether the
    /// connection is now authenticated. `None` means the body is malformed.
    pub(crate) fn respond(&self, body: &[u8], authenticated: &mut bool) -> Option<Vec<u8>> {
        let (header, mut rest) = body.split_at_checked(HEADER_SIZE)?;
        let command = header[2];
        let mut fields = HashMap::new();
        for _ in 0..header[3] {
            let (size, tail) = rest.split_first_chunk::<4>()?;
            let (&id, tail) = tail.split_first()?;
            let (data, tail) =
                tail.split_at_checked((u32::from_be_bytes(*size) as usize).checked_sub(1)?)?;
            fields.insert(id, data);
            rest = tail;
        }
        let user = fields
            .get(&USER)
            .map(|u| String::from_utf8_lossy(u).into_owned());
        let (result, reply_fields) = match command {
            _ if !self.enabled() => (SECURITY_NOT_SUPPORTED, Vec::new()),
            LOGIN => self.login(user, fields.get(&CREDENTIAL).copied()),
            AUTHENTICATE => {
                let token = fields.get(&SESSION_TOKEN).copied().unwrap_or_default();
                let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
                if user.is_some() && sessions.get(token) == user.as_ref() {
                    (OK, Vec::new())
                } else {
                    (INVALID_CREDENTIAL, Vec::new())
                }
            }
            _ => (INVALID_COMMAND, Vec::new()),
        };
        if result == OK {
            *authenticated = true;
        }
        Some(frame(command, result, &reply_fields))
    }

    fn login(
        &self,
        user: Option<String>,
        credential: Option<&[u8]>,
    ) -> (ResultCode, Vec<(u8, Vec<u8>)>) {
        let Some((user, expected)) = user.and_then(|u| self.credentials.get_key_value(&u)) else {
            return (INVALID_USER, Vec::new());
        };
        if credential != Some(expected.as_bytes()) {
            return (INVALID_CREDENTIAL, Vec::new());
        }
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let token = format!("fixture-session-{n}").into_bytes();
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.clone(), user.clone());
        let ttl = SESSION_TTL_SECS.to_be_bytes().to_vec();
        (OK, vec![(SESSION_TOKEN, token), (SESSION_TTL, ttl)])
    }
}

fn frame(command: u8, result: ResultCode, fields: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0; 8];
    out.extend_from_slice(&[0, result, command, fields.len() as u8]);
    out.extend_from_slice(&[0; HEADER_SIZE - 4]);
    for (id, data) in fields {
        out.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
        out.push(*id);
        out.extend_from_slice(data);
    }
    let size = (out.len() - 8) as u64;
    let proto = size | (2u64 << 56) | (u64::from(PROTO_TYPE_SECURITY) << 48);
    out[..8].copy_from_slice(&proto.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(command: u8, fields: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = vec![0, 0, command, fields.len() as u8];
        out.extend_from_slice(&[0; HEADER_SIZE - 4]);
        for (id, data) in fields {
            out.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
            out.push(*id);
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn community_edition_does_not_support_security() {
        let security = Security::new(&[]).unwrap();
        let mut authenticated = false;
        let reply = security
            .respond(&request(LOGIN, &[]), &mut authenticated)
            .unwrap();
        assert_eq!(reply[9], SECURITY_NOT_SUPPORTED);
        assert!(!authenticated);
    }

    #[test]
    fn login_checks_the_client_hash_and_issues_a_session() {
        let security = Security::new(&[("ann".into(), "secret".into())]).unwrap();
        // The hash the client library computes for "secret".
        let hash = bcrypt::hash_with_salt("secret", PASSWORD_COST, PASSWORD_SALT)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoA);
        assert!(hash.starts_with("$2a$10$7EqJtq98hPqEX7fNZaFWoO"));
        let mut authenticated = false;
        let wrong = request(LOGIN, &[(USER, b"ann"), (CREDENTIAL, b"nope")]);
        assert_eq!(
            security.respond(&wrong, &mut authenticated).unwrap()[9],
            INVALID_CREDENTIAL
        );
        let unknown = request(LOGIN, &[(USER, b"bob"), (CREDENTIAL, hash.as_bytes())]);
        assert_eq!(
            security.respond(&unknown, &mut authenticated).unwrap()[9],
            INVALID_USER
        );
        assert!(!authenticated);

        let login = request(LOGIN, &[(USER, b"ann"), (CREDENTIAL, hash.as_bytes())]);
        let reply = security.respond(&login, &mut authenticated).unwrap();
        assert_eq!((reply[9], reply[11]), (OK, 2));
        assert!(authenticated);
        let token_size = u32::from_be_bytes(reply[24..28].try_into().unwrap()) as usize - 1;
        let token = &reply[29..29 + token_size];

        let mut again = false;
        let auth = request(AUTHENTICATE, &[(USER, b"ann"), (SESSION_TOKEN, token)]);
        assert_eq!(security.respond(&auth, &mut again).unwrap()[9], OK);
        assert!(again);
        let mut forged_ok = false;
        let forged = request(AUTHENTICATE, &[(USER, b"ann"), (SESSION_TOKEN, b"forged")]);
        let reply = security.respond(&forged, &mut forged_ok).unwrap();
        assert_eq!((reply[9], forged_ok), (INVALID_CREDENTIAL, false));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let security = Security::new(&[]).unwrap();
        let mut authenticated = false;
        assert!(security.respond(&[0; 3], &mut authenticated).is_none());
        let mut body = request(LOGIN, &[(USER, b"ann")]);
        body.truncate(body.len() - 1);
        assert!(security.respond(&body, &mut authenticated).is_none());
    }
}
