//! What the edge needs to talk to Redis over a raw socket, without I/O: where Redis is (a
//! `redis://` or `rediss://` URL, with credentials and a database), the commands a connection starts
//! with (AUTH, SELECT), and RESP2 framing: encoding commands and parsing replies, several per buffer
//! when they are pipelined.

/// Why a Redis URL or reply cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisProtocolError {
    /// The URL is not `redis://` or `rediss://` with a host.
    #[error(
        "not a Redis URL (redis://[[user]:password@]host[:port][/db], or rediss:// for TLS): {0}"
    )]
    BadUrl(String),
    /// Redis answered with an error.
    #[error("redis: {0}")]
    Server(String),
    /// The reply is not RESP2.
    #[error("redis: malformed reply: {0}")]
    Malformed(&'static str),
}

/// Where Redis is, and how a connection to it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisAddress {
    /// The host name or address.
    pub host: String,
    /// The port (6379 unless the URL says).
    pub port: u16,
    /// Whether to speak TLS (`rediss://`), as managed Redis services require.
    pub tls: bool,
    /// The ACL user, when the URL names one (Redis 6+).
    pub username: Option<String>,
    /// The password, when the URL has one.
    pub password: Option<String>,
    /// The database (`/2`); 0 unless the URL says.
    pub db: u32,
}

impl RedisAddress {
    /// Plain TCP to `host:port`, database 0, no credentials.
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: false,
            username: None,
            password: None,
            db: 0,
        }
    }

    /// Reads `redis://[[user]:password@]host[:port][/db]` or the same with `rediss://` (TLS).
    /// User and password may be percent-encoded.
    pub fn parse(url: &str) -> Result<Self, RedisProtocolError> {
        let bad = || RedisProtocolError::BadUrl(redacted(url));
        let (tls, rest) = if let Some(rest) = url.strip_prefix("rediss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("redis://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority),
        };
        let (username, password) = match credentials {
            None => (None, None),
            Some(credentials) => {
                let (user, password) = match credentials.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => ("", Some(credentials)),
                };
                let user = percent_decode(user).ok_or_else(bad)?;
                let password = match password {
                    Some(password) => Some(percent_decode(password).ok_or_else(bad)?),
                    None => None,
                };
                ((!user.is_empty()).then_some(user), password)
            }
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (host_port, 6379),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let db = if path.is_empty() {
            0
        } else {
            path.parse().map_err(|_| bad())?
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            tls,
            username,
            password,
            db,
        })
    }

    /// The commands a new connection sends before its own: `AUTH` when there is a password, `SELECT`
    /// when the database is not 0. Each answers `+OK`.
    pub fn handshake(&self) -> Vec<Vec<Vec<u8>>> {
        let mut commands = Vec::new();
        if let Some(password) = &self.password {
            let mut auth = vec![b"AUTH".to_vec()];
            if let Some(user) = &self.username {
                auth.push(user.clone().into_bytes());
            }
            auth.push(password.clone().into_bytes());
            commands.push(auth);
        }
        if self.db != 0 {
            commands.push(vec![b"SELECT".to_vec(), self.db.to_string().into_bytes()]);
        }
        commands
    }
}

/// The URL with its password replaced, for error messages and logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One command as a RESP2 array of bulk strings, appended to `frame` (so that commands pipeline).
pub fn encode_command(frame: &mut Vec<u8>, args: &[&[u8]]) {
    frame.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        frame.extend_from_slice(arg);
        frame.extend_from_slice(b"\r\n");
    }
}

/// A Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK` and other simple strings.
    Simple(String),
    /// A bulk string, or `None` for a nil.
    Bulk(Option<Vec<u8>>),
    /// An integer (`:1`), as scripts return.
    Integer(i64),
}

/// Parses the first complete reply in `buffer`: the reply and how many bytes it took, or `None` when
/// more bytes are needed. An error reply (`-ERR ...`) is [`RedisProtocolError::Server`].
pub fn parse_reply(buffer: &[u8]) -> Result<Option<(Reply, usize)>, RedisProtocolError> {
    let Some(line_end) = buffer.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buffer[1..line_end]);
    let after_line = line_end + 2;
    match buffer.first() {
        Some(b'+') => Ok(Some((Reply::Simple(line.into_owned()), after_line))),
        Some(b'-') => Err(RedisProtocolError::Server(line.into_owned())),
        Some(b':') => line
            .parse()
            .map(|n| Some((Reply::Integer(n), after_line)))
            .map_err(|_| RedisProtocolError::Malformed("bad integer")),
        Some(b'$') => {
            let length: i64 = line
                .parse()
                .map_err(|_| RedisProtocolError::Malformed("bad bulk length"))?;
            if length < 0 {
                return Ok(Some((Reply::Bulk(None), after_line)));
            }
            let end = after_line + length as usize;
            if buffer.len() < end + 2 {
                return Ok(None);
            }
            Ok(Some((
                Reply::Bulk(Some(buffer[after_line..end].to_vec())),
                end + 2,
            )))
        }
        _ => Err(RedisProtocolError::Malformed("unknown reply type")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_tls_credentials_and_a_database() {
        let address =
            RedisAddress::parse("rediss://default:p%40ss@redis.example.com:6380/2").unwrap();
        assert_eq!(
            address,
            RedisAddress {
                host: "redis.example.com".into(),
                port: 6380,
                tls: true,
                username: Some("default".into()),
                password: Some("p@ss".into()),
                db: 2,
            }
        );
        assert_eq!(
            address.handshake(),
            vec![
                vec![b"AUTH".to_vec(), b"default".to_vec(), b"p@ss".to_vec()],
                vec![b"SELECT".to_vec(), b"2".to_vec()],
            ]
        );
        let plain = RedisAddress::parse("redis://127.0.0.1:6390").unwrap();
        assert_eq!(plain, RedisAddress::plain("127.0.0.1", 6390));
        assert!(plain.handshake().is_empty());
        let password_only = RedisAddress::parse("redis://:secret@cache/0").unwrap();
        assert_eq!((password_only.username, password_only.port), (None, 6379));
        assert_eq!(
            RedisAddress::parse("redis://secret@cache")
                .unwrap()
                .password,
            Some("secret".into())
        );
    }

    #[test]
    fn bad_urls_are_refused_without_their_password() {
        for url in [
            "http://cache:6379",
            "redis://",
            "redis://:pw@host:port",
            "redis://h/x",
        ] {
            assert!(RedisAddress::parse(url).is_err(), "{url}");
        }
        let error = RedisAddress::parse("redis://user:hunter2@host:x").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn pipelined_replies_parse_one_after_another() {
        let buffer = b"+OK\r\n$3\r\nabc\r\n$-1\r\n:1\r\n";
        let mut at = 0;
        let mut replies = Vec::new();
        while let Some((reply, used)) = parse_reply(&buffer[at..]).unwrap() {
            replies.push(reply);
            at += used;
        }
        assert_eq!(
            replies,
            vec![
                Reply::Simple("OK".into()),
                Reply::Bulk(Some(b"abc".to_vec())),
                Reply::Bulk(None),
                Reply::Integer(1),
            ]
        );
        assert_eq!(at, buffer.len());
        assert_eq!(parse_reply(b"$3\r\nab").unwrap(), None);
        assert_eq!(
            parse_reply(b"-WRONGPASS invalid\r\n"),
            Err(RedisProtocolError::Server("WRONGPASS invalid".into()))
        );
    }

    #[test]
    fn commands_encode_as_arrays_of_bulk_strings() {
        let mut frame = Vec::new();
        encode_command(&mut frame, &[b"GET", b"k"]);
        assert_eq!(frame, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
    }
}
