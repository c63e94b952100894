//! frp's v1 stream cipher (golib `crypto/encode.go`, `decode.go`; frp-protocol.md §4.2):
//! AES-128-CFB (full 128-bit feedback), key = PBKDF2-HMAC-SHA1(token, "frp", 64 rounds, 16 bytes).
//!
//! No IO here: [`crate::io::crypt`] puts this state on a stream.

use aes::cipher::{BlockCipher, BlockClosure, BlockEncrypt, BlockSizeUser, InnerIvInit, KeyInit};
use aes::Aes128Enc;
use sha1::Sha1;
use std::sync::Arc;

/// frp sets golib's `crypto.DefaultSalt` to "frp" in both binaries (golib's own default is "crypto").
pub const SALT: &[u8] = b"frp";
/// PBKDF2 rounds used by golib.
pub const ITERATIONS: u32 = 64;
/// AES-128 key and IV size.
pub const KEY_LEN: usize = 16;
pub const IV_LEN: usize = 16;

/// An AES-128 key derived from a token or secret key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key(pub [u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(***)")
    }
}

/// Derives the stream key from a password (the auth token, or a proxy's secret key).
pub fn derive_key(password: &[u8]) -> Key {
    let mut k = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha1>(password, SALT, ITERATIONS, &mut k);
    Key(k)
}

/// [`derive_key`] of the auth token, for every control channel: the token is the same for each
/// login, and its 64 PBKDF2 rounds were 60% of frps's instructions in a login storm (issue 21
/// callgrind profile), so the last token's key is kept (compared in constant time).
pub fn token_key(token: &[u8]) -> Key {
    use std::sync::Mutex;
    use subtle::ConstantTimeEq;
    static LAST: Mutex<Option<(Vec<u8>, Key)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((t, k)) = &*last {
        if bool::from(t.as_slice().ct_eq(token)) {
            return *k;
        }
    }
    let k = derive_key(token);
    *last = Some((token.to_vec(), k));
    k
}

/// The AES-128 key schedule of a key, shared: a stream's two directions use one, and so do
/// all streams under the same key (every control channel uses the token's): 1.5 KB per
/// client before (issue 21). CFB only ever runs the cipher forwards, so no decryption schedule.
pub fn cipher(key: &Key) -> Arc<Aes128Enc> {
    use std::sync::Mutex;
    use subtle::ConstantTimeEq;
    static LAST: Mutex<Option<(Key, Arc<Aes128Enc>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, c)) = &*last {
        if bool::from(k.0.ct_eq(&key.0)) {
            return c.clone();
        }
    }
    let c = Arc::new(Aes128Enc::new(&key.0.into()));
    *last = Some((*key, c.clone()));
    c
}

/// An AES-128 key schedule shared through an `Arc`, as the block cipher of `cfb-mode`'s
/// streams (which keep their cipher by value).
#[derive(Clone)]
pub struct SharedCipher(Arc<Aes128Enc>);

impl std::fmt::Debug for SharedCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedCipher")
    }
}

impl BlockSizeUser for SharedCipher {
    type BlockSize = <Aes128Enc as BlockSizeUser>::BlockSize;
}

impl BlockCipher for SharedCipher {}

impl BlockEncrypt for SharedCipher {
    fn encrypt_with_backend(&self, f: impl BlockClosure<BlockSize = Self::BlockSize>) {
        self.0.encrypt_with_backend(f)
    }
}

/// Encrypting half of a CFB stream; keystream position carries over between calls.
pub struct Encryptor(cfb_mode::BufEncryptor<SharedCipher>);
/// Decrypting half of a CFB stream.
pub struct Decryptor(cfb_mode::BufDecryptor<SharedCipher>);

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encryptor")
    }
}
impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decryptor")
    }
}

impl Encryptor {
    pub fn new(key: &Key, iv: &[u8; IV_LEN]) -> Self {
        Self::with_cipher(cipher(key), iv)
    }
    /// With the key schedule from [`cipher`].
    pub fn with_cipher(cipher: Arc<Aes128Enc>, iv: &[u8; IV_LEN]) -> Self {
        Encryptor(cfb_mode::BufEncryptor::inner_iv_init(
            SharedCipher(cipher),
            iv.into(),
        ))
    }
    /// Encrypts in place.
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.encrypt(data)
    }
}

impl Decryptor {
    pub fn new(key: &Key, iv: &[u8; IV_LEN]) -> Self {
        Self::with_cipher(cipher(key), iv)
    }
    /// With the key schedule from [`cipher`].
    pub fn with_cipher(cipher: Arc<Aes128Enc>, iv: &[u8; IV_LEN]) -> Self {
        Decryptor(cfb_mode::BufDecryptor::inner_iv_init(
            SharedCipher(cipher),
            iv.into(),
        ))
    }
    /// Decrypts in place.
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.decrypt(data)
    }
}

/// A fresh random IV.
pub fn random_iv() -> [u8; IV_LEN] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    // frp-protocol.md §21.
    #[test]
    fn key_derivation_vectors() {
        assert_eq!(
            hex::encode(derive_key(b"12345678").0),
            "b7eac3f66310824c114f56f8274fdfea"
        );
        assert_eq!(
            hex::encode(derive_key(b"").0),
            "cdc9dc4c472c37331281df4c232a8407"
        );
    }

    #[test]
    fn token_key_is_derive_key_for_each_token() {
        for t in [&b"12345678"[..], b"", b"12345678", b"other"] {
            assert_eq!(token_key(t), derive_key(t));
        }
    }

    #[test]
    fn cfb_is_a_continuous_stream() {
        let key = derive_key(b"k");
        let iv = [7u8; 16];
        let plain: Vec<u8> = (0..100u8).collect();
        let mut one = plain.clone();
        Encryptor::new(&key, &iv).apply(&mut one);
        // Split across odd-sized writes: same ciphertext.
        let mut parts = plain.clone();
        let mut e = Encryptor::new(&key, &iv);
        let (a, rest) = parts.split_at_mut(3);
        let (b, c) = rest.split_at_mut(29);
        e.apply(a);
        e.apply(b);
        e.apply(c);
        assert_eq!(one, parts);
        let mut d = Decryptor::new(&key, &iv);
        let (a, b) = parts.split_at_mut(50);
        d.apply(a);
        d.apply(b);
        assert_eq!(parts, plain);
    }

    /// Over the shared key schedule as with the cipher's own, over random keys, IVs and
    /// split points.
    #[test]
    fn cfb_matches_cfb_mode_crate() {
        use cfb_mode::cipher::KeyIvInit;
        for round in 0..200u32 {
            let key = derive_key(&round.to_le_bytes());
            let iv: [u8; 16] = rand::random();
            let len = (round as usize * 37) % 700;
            let plain: Vec<u8> = (0..len).map(|_| rand::random()).collect();
            let mut want = plain.clone();
            cfb_mode::BufEncryptor::<aes::Aes128>::new(&key.0.into(), &iv.into())
                .encrypt(&mut want);
            let mut got = plain.clone();
            let mut e = Encryptor::new(&key, &iv);
            let mut d = Decryptor::new(&key, &iv);
            in_random_pieces(&mut got, |p| e.apply(p));
            assert_eq!(got, want, "encrypt round {round}");
            in_random_pieces(&mut got, |p| d.apply(p));
            assert_eq!(got, plain, "decrypt round {round}");
        }
    }

    /// Calls `f` on consecutive pieces of `data` of random lengths (0-199 bytes).
    fn in_random_pieces(data: &mut [u8], mut f: impl FnMut(&mut [u8])) {
        let mut at = 0;
        while at < data.len() {
            let step = (rand::random::<usize>() % 200).min(data.len() - at);
            f(&mut data[at..at + step]);
            at += step;
        }
    }

    #[test]
    fn cfb_golden_vector() {
        // NIST SP 800-38A F.3.13 CFB128-AES128.Encrypt, first block.
        let key = Key(hex::decode("2b7e151628aed2a6abf7158809cf4f3c")
            .unwrap()
            .try_into()
            .unwrap());
        let iv: [u8; 16] = hex::decode("000102030405060708090a0b0c0d0e0f")
            .unwrap()
            .try_into()
            .unwrap();
        let mut block = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        Encryptor::new(&key, &iv).apply(&mut block);
        assert_eq!(hex::encode(block), "3b3fd92eb72dad20333449f8e83cfb4a");
    }
}
