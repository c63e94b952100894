//! frp's v1 stream cipher (golib `crypto/encode.go`, `decode.go`; frp-protocol.md §4.2):
//! AES-128-CFB (full 128-bit feedback), key = PBKDF2-HMAC-SHA1(token, "frp", 64 rounds, 16 bytes).
//!
//! No IO here: [`crate::io::crypt`] puts this state on a stream.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128Enc, Block};
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
/// all streams under the same key (every control channel uses the token's): 700 bytes per
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

/// One direction of CFB-128: the keystream block in use and the ciphertext block it feeds.
struct Cfb {
    cipher: Arc<Aes128Enc>,
    /// E(previous ciphertext block): the keystream for the bytes of the current block.
    stream: Block,
    /// The current block's ciphertext so far (the IV before the first byte).
    feed: Block,
    /// Bytes of the current block done; 16 = the next byte starts a new block.
    pos: usize,
}

impl Cfb {
    fn new(cipher: Arc<Aes128Enc>, iv: &[u8; IV_LEN]) -> Self {
        Cfb {
            cipher,
            stream: Block::default(),
            feed: (*iv).into(),
            pos: IV_LEN,
        }
    }

    /// One byte of the current block, in place.
    fn byte(&mut self, b: &mut u8, decrypt: bool) {
        let out = *b ^ self.stream[self.pos];
        self.feed[self.pos] = if decrypt { *b } else { out };
        *b = out;
        self.pos += 1;
    }

    /// Encrypts (`decrypt` false) or decrypts `data` in place.
    fn apply(&mut self, mut data: &mut [u8], decrypt: bool) {
        // The rest of a block begun by an earlier call, byte by byte.
        while self.pos < IV_LEN && !data.is_empty() {
            self.byte(&mut data[0], decrypt);
            data = &mut data[1..];
        }
        if decrypt {
            // Every keystream block of a ciphertext is known up front: 8 at a time through
            // the cipher's parallel path.
            while data.len() >= IV_LEN {
                let n = (data.len() / IV_LEN).min(PAR);
                let mut ks = [Block::default(); PAR];
                ks[0] = self.feed;
                for i in 1..n {
                    ks[i].copy_from_slice(&data[(i - 1) * IV_LEN..i * IV_LEN]);
                }
                self.feed
                    .copy_from_slice(&data[(n - 1) * IV_LEN..n * IV_LEN]);
                self.cipher.encrypt_blocks(&mut ks[..n]);
                for (chunk, k) in data[..n * IV_LEN].chunks_exact_mut(IV_LEN).zip(&ks) {
                    chunk.iter_mut().zip(k.iter()).for_each(|(b, k)| *b ^= k);
                }
                data = &mut data[n * IV_LEN..];
            }
        } else {
            while data.len() >= IV_LEN {
                let mut ks = self.feed;
                self.cipher.encrypt_block(&mut ks);
                let (chunk, rest) = data.split_at_mut(IV_LEN);
                chunk.iter_mut().zip(ks.iter()).for_each(|(b, k)| *b ^= k);
                self.feed.copy_from_slice(chunk);
                data = rest;
            }
        }
        // A block begun here, finished by a later call.
        if !data.is_empty() {
            self.stream = self.feed;
            self.cipher.encrypt_block(&mut self.stream);
            self.pos = 0;
            for b in data.iter_mut() {
                self.byte(b, decrypt);
            }
        }
    }
}

/// Blocks decrypted per parallel cipher call.
const PAR: usize = 8;

/// Encrypting half of a CFB stream; keystream position carries over between calls.
pub struct Encryptor(Cfb);
/// Decrypting half of a CFB stream.
pub struct Decryptor(Cfb);

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
        Encryptor(Cfb::new(cipher, iv))
    }
    /// Encrypts in place.
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply(data, false)
    }
}

impl Decryptor {
    pub fn new(key: &Key, iv: &[u8; IV_LEN]) -> Self {
        Self::with_cipher(cipher(key), iv)
    }
    /// With the key schedule from [`cipher`].
    pub fn with_cipher(cipher: Arc<Aes128Enc>, iv: &[u8; IV_LEN]) -> Self {
        Decryptor(Cfb::new(cipher, iv))
    }
    /// Decrypts in place.
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply(data, true)
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

    /// Ours against the cfb-mode crate, over random keys, IVs and split points.
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
