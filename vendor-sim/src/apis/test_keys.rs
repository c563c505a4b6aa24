//! RSA key pairs and signatures for the API tests, made by the `openssl` command line (another
//! implementation than the simulator's, and no key is kept in the repository).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A 2048-bit RSA key pair made by `openssl` in a fresh temp directory (removed on drop):
/// `key.pem` (PKCS#8) and `pub.pem` (SPKI).
pub(crate) struct OpensslKeys {
    dir: PathBuf,
}

impl OpensslKeys {
    /// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem`, then
    /// `openssl pkey -in key.pem -pubout -out pub.pem`.
    pub(crate) fn generate(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "vendor-sim-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = Self { dir };
        keys.openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ]);
        keys.openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
        keys
    }

    /// The directory holding `key.pem` and `pub.pem`.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// `pub.pem`: the public key, SPKI PEM.
    pub(crate) fn public_pem(&self) -> String {
        std::fs::read_to_string(self.dir.join("pub.pem")).unwrap()
    }

    /// Runs `openssl args…` in the directory and returns its standard output; panics if it fails.
    pub(crate) fn openssl(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("running openssl {args:?} (is openssl installed?): {e}"));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The standard base64 of `openssl dgst -sha256 -sign key.pem` over `message`
    /// (RSASSA-PKCS1-v1_5 SHA-256), base64 by `openssl base64 -A`.
    pub(crate) fn sign(&self, message: &str) -> String {
        std::fs::write(self.dir.join("message"), message).unwrap();
        self.openssl(&[
            "dgst",
            "-sha256",
            "-sign",
            "key.pem",
            "-out",
            "signature.bin",
            "message",
        ]);
        let base64 = self.openssl(&["base64", "-A", "-in", "signature.bin"]);
        String::from_utf8(base64).unwrap().trim().to_owned()
    }
}

impl Drop for OpensslKeys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
