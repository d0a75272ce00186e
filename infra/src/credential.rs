//! A credential read at each use, so the caller can hand in a value its secret store rotates
//! (the bridge's live secrets) as easily as a fixed one. Never printed.

use std::fmt;
use std::sync::Arc;

/// A token, password or key, as it is now.
#[derive(Clone)]
pub struct Credential(Arc<dyn Fn() -> String + Send + Sync>);

impl Credential {
    /// A value that never changes.
    pub fn fixed(value: impl Into<String>) -> Credential {
        let value: Arc<str> = Arc::from(value.into());
        Credential(Arc::new(move || value.to_string()))
    }

    /// A value read from `read` at each use.
    pub fn live(read: impl Fn() -> String + Send + Sync + 'static) -> Credential {
        Credential(Arc::new(read))
    }

    /// The value now.
    pub fn get(&self) -> String {
        (self.0)()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Credential {
    fn from(value: String) -> Credential {
        Credential::fixed(value)
    }
}

impl From<&str> for Credential {
    fn from(value: &str) -> Credential {
        Credential::fixed(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn a_live_credential_is_read_at_each_use_and_never_printed() {
        let value = Arc::new(Mutex::new("one".to_string()));
        let read = value.clone();
        let c = Credential::live(move || read.lock().unwrap().clone());
        assert_eq!(c.get(), "one");
        *value.lock().unwrap() = "two".into();
        assert_eq!(c.get(), "two");
        assert_eq!(format!("{c:?}"), "***");
        assert_eq!(Credential::from("x").get(), "x");
    }
}
