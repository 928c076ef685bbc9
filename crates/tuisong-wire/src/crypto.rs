//! Message-push (消息推送) signatures and AES message crypto, exactly as spec §7.4–§7.6.
//!
//! Owns: the sorted-SHA-1 `signature` helper used for `signature` and `msg_signature`, and
//! [`MsgCrypt`], which turns a plaintext push body into the base64 `Encrypt` field and back.
//! No I/O and no knowledge of which parts a caller signs; that belongs to the push client.
//!
//! Choices (our own, not dictated by WeChat):
//! - UNCONFIRMED: the EncodingAESKey is decoded with non-zero trailing bits *allowed*. A
//!   43-char key carries 2 bits beyond its 32 bytes; keys typed by hand in the admin console
//!   may set them, and Python, Java and Go (non-`Strict`) decoders all ignore them, so a strict
//!   decoder would refuse keys the SDKs accept.
//! - `decrypt` is stricter than the SDKs (§7.4 step 5 says they ignore bad pads): it demands a
//!   whole PKCS#7 pad of 1..=32 equal bytes, a length field that fits, and our own appid tail
//!   (as silenceper and wechatpy do). A peer that pads correctly never notices.
//! - CBC has no integrity check. Tampering with the last blocks breaks the padding or the
//!   appid, but a flipped bit in the first block only scrambles the random prefix and still
//!   decrypts. Authenticity comes from `msg_signature`, which callers must verify first.
//! - The length field is a u32. A message over 4 GiB cannot be represented; its length
//!   saturates and `decrypt` would then refuse the result (appid mismatch) rather than
//!   return a wrong message. `encrypt` itself never fails.

use std::fmt;

use aes::Aes256;
use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use sha1::{Digest, Sha1};

type Aes256CbcEnc = cbc::Encryptor<Aes256>;
type Aes256CbcDec = cbc::Decryptor<Aes256>;

/// WeChat pads to 32 bytes (PKCS#7 with block size 32), not to the AES block size of 16.
const PAD_BLOCK: usize = 32;
const RANDOM_LEN: usize = 16;
const LEN_FIELD: usize = 4;
const HEADER_LEN: usize = RANDOM_LEN + LEN_FIELD;
const ENCODING_AES_KEY_LEN: usize = 43;

/// Standard alphabet and canonical padding, but the unused low bits of the last character
/// may be set; see the module comment.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// sha1 over the parts sorted lexicographically by bytes and concatenated, lowercase hex.
///
/// `str`'s `Ord` is byte order, which is what WxJava, wechatpy and silenceper sort by.
pub fn signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Why a key could not be used or a ciphertext could not be opened.
///
/// The variants carry no data on purpose: nothing from a key or a plaintext ends up in a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("EncodingAESKey must be 43 base64 characters decoding to 32 bytes")]
    BadKey,
    #[error("ciphertext is not valid standard base64")]
    BadBase64,
    #[error("ciphertext or its length field has an impossible length")]
    BadLength,
    #[error("plaintext padding is not PKCS#7 to 32-byte blocks")]
    BadPadding,
    #[error("decrypted message is not UTF-8")]
    BadUtf8,
    #[error("decrypted message belongs to another appid")]
    AppIdMismatch,
}

/// The AES key and app id of one app's message push. Debug prints "[redacted]" for the key.
#[derive(Clone)]
pub struct MsgCrypt {
    key: [u8; 32],
    /// Always `key[0..16]` (§7.4 step 1); kept apart so no code path slices the key.
    iv: [u8; 16],
    appid: String,
}

impl fmt::Debug for MsgCrypt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsgCrypt")
            .field("key", &format_args!("[redacted]"))
            .field("appid", &self.appid)
            .finish()
    }
}

impl MsgCrypt {
    /// `encoding_aes_key` must be 43 chars and decode (with "=" appended, standard base64) to 32 bytes.
    pub fn new(encoding_aes_key: &str, appid: &str) -> Result<MsgCrypt, CryptoError> {
        if encoding_aes_key.len() != ENCODING_AES_KEY_LEN {
            return Err(CryptoError::BadKey);
        }
        let decoded = KEY_ENGINE
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| CryptoError::BadKey)?;
        let key = <[u8; 32]>::try_from(decoded.as_slice()).map_err(|_| CryptoError::BadKey)?;
        let (iv, _) = key.split_first_chunk::<16>().ok_or(CryptoError::BadKey)?;
        Ok(MsgCrypt {
            iv: *iv,
            key,
            appid: appid.to_owned(),
        })
    }

    /// The appid this key seals into, and demands back from, every message.
    pub fn appid(&self) -> &str {
        &self.appid
    }

    /// Encrypts `msg` with 16 fresh random bytes; returns the base64 `Encrypt` value.
    pub fn encrypt(&self, msg: &str) -> String {
        self.encrypt_with_random(&rand::random::<[u8; RANDOM_LEN]>(), msg)
    }

    /// Encrypts with a caller-chosen random prefix, for test vectors and reproducible fixtures.
    pub fn encrypt_with_random(&self, random: &[u8; 16], msg: &str) -> String {
        // Length saturates instead of wrapping; see the module comment.
        let msg_len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
        let unpadded = HEADER_LEN + msg.len() + self.appid.len();
        let pad = PAD_BLOCK - unpadded % PAD_BLOCK;

        let mut buf = Vec::with_capacity(unpadded + pad);
        buf.extend_from_slice(random);
        buf.extend_from_slice(&msg_len.to_be_bytes());
        buf.extend_from_slice(msg.as_bytes());
        buf.extend_from_slice(self.appid.as_bytes());
        // `pad` is 1..=32, so the cast is lossless.
        buf.resize(unpadded + pad, pad as u8);

        let buf_len = buf.len();
        let cipher = Aes256CbcEnc::new(&self.key.into(), &self.iv.into());
        // NoPadding refuses only a length that is not a whole number of AES blocks; `buf` is a
        // whole number of 32-byte blocks by construction, so the fallback is never taken. It is
        // an empty ciphertext rather than a panic, and `decrypt` would refuse it.
        let ciphertext = cipher
            .encrypt_padded_mut::<NoPadding>(&mut buf, buf_len)
            .unwrap_or_default();
        STANDARD.encode(ciphertext)
    }

    /// Verifies padding (1..=32, PKCS#7 to 32-byte blocks), length field, and that the trailing appid equals ours.
    pub fn decrypt(&self, encrypted_b64: &str) -> Result<String, CryptoError> {
        let plain = self.decrypt_raw(encrypted_b64)?;
        let full = strip_padding(&plain)?;
        let (len_field, rest) = full
            .get(RANDOM_LEN..)
            .and_then(|after_random| after_random.split_first_chunk::<LEN_FIELD>())
            .ok_or(CryptoError::BadLength)?;
        let msg_len =
            usize::try_from(u32::from_be_bytes(*len_field)).map_err(|_| CryptoError::BadLength)?;
        if msg_len > rest.len() {
            return Err(CryptoError::BadLength);
        }
        let (msg, appid) = rest.split_at(msg_len);
        // Check the appid before decoding the message: a foreign message is refused as such
        // even when its bytes happen not to be UTF-8.
        if appid != self.appid.as_bytes() {
            return Err(CryptoError::AppIdMismatch);
        }
        String::from_utf8(msg.to_vec()).map_err(|_| CryptoError::BadUtf8)
    }

    /// Base64 and AES only: the padded FullStr, nothing checked inside it.
    fn decrypt_raw(&self, encrypted_b64: &str) -> Result<Vec<u8>, CryptoError> {
        let mut buf = STANDARD
            .decode(encrypted_b64)
            .map_err(|_| CryptoError::BadBase64)?;
        // A correct sender always produces whole 32-byte blocks (silenceper checks the same).
        if buf.is_empty() || buf.len() % PAD_BLOCK != 0 {
            return Err(CryptoError::BadLength);
        }
        let cipher = Aes256CbcDec::new(&self.key.into(), &self.iv.into());
        let plain_len = cipher
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::BadLength)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

/// Removes a PKCS#7 pad of 1..=32 bytes, all equal to the pad length.
fn strip_padding(plain: &[u8]) -> Result<&[u8], CryptoError> {
    let (&pad, _) = plain.split_last().ok_or(CryptoError::BadPadding)?;
    let pad = usize::from(pad);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(CryptoError::BadPadding);
    }
    let (body, tail) = plain.split_at(plain.len() - pad);
    if tail.iter().any(|&b| usize::from(b) != pad) {
        return Err(CryptoError::BadPadding);
    }
    Ok(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TOKEN: &str = "AAAAA";
    const APPID: &str = "wxba5fad812f8e6fb9";
    const SAFE_ENCRYPT: &str = "+qdx1OKCy+5JPCBFWw70tm0fJGb2Jmeia4FCB7kao+/Q5c/ohsOzQHi8khUOb05JCpj0JB4RvQMkUyus8TPxLKJGQqcvZqzDpVzazhZv6JsXUnnR8XGT740XgXZUXQ7vJVnAG+tE8NUd4yFyjPy7GgiaviNrlCTj+l5kdfMuFUPpRSrfMZuMcp3Fn2Pede2IuQrKEYwKSqFIZoNqJ4M8EajAsjLY2km32IIjdf8YL/P50F7mStwntrA2cPDrM1kb6mOcfBgRtWygb3VIYnSeOBrebufAlr7F9mFUPAJGj04=";
    const SAFE_MSG: &str = r#"{"ToUserName":"gh_97417a04a28d","FromUserName":"o9AgO5Kd5ggOC-bXrbNODIiE3bGY","CreateTime":1714112445,"MsgType":"event","Event":"debug_demo","debug_str":"hello world"}"#;
    const REPLY_ENCRYPT: &str =
        "ELGduP2YcVatjqIS+eZbp80MNLoAUWvzzyJxgGzxZO/5sAvd070Bs6qrLARC9nVHm48Y4hyRbtzve1L32tmxSQ==";

    fn official() -> MsgCrypt {
        MsgCrypt::new(&"A".repeat(43), APPID).unwrap()
    }

    #[test]
    fn the_get_handshake_signature_matches_the_official_vector() {
        assert_eq!(
            signature(&[TOKEN, "1714036504", "1514711492"]),
            "f464b24fc39322e44b38aa78f5edd27bd1441696"
        );
    }

    #[test]
    fn the_plaintext_post_signature_matches_the_official_vector() {
        assert_eq!(
            signature(&[TOKEN, "1714037059", "486452656"]),
            "899cf89e464efb63f54ddac96b0a0a235f53aa78"
        );
    }

    #[test]
    fn the_safe_post_signature_and_msg_signature_match_the_official_vector() {
        assert_eq!(
            signature(&[TOKEN, "1714112445", "415670741"]),
            "6c5c811b55cc85e0e1b54100749188c20beb3f5d"
        );
        assert_eq!(
            signature(&[TOKEN, "1714112445", "415670741", SAFE_ENCRYPT]),
            "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
        );
    }

    #[test]
    fn signature_does_not_depend_on_the_order_of_its_parts() {
        assert_eq!(
            signature(&["415670741", SAFE_ENCRYPT, TOKEN, "1714112445"]),
            "046e02f8204d34f8ba5fa3b1db94908f3df2e9b3"
        );
    }

    #[test]
    fn the_official_safe_post_decrypts_to_the_exact_json_and_appid() {
        let crypt = official();
        assert_eq!(crypt.decrypt(SAFE_ENCRYPT).unwrap(), SAFE_MSG);

        // The layout the spec recomputed: 224 bytes, pad 19, random, len 167, appid tail.
        let plain = crypt.decrypt_raw(SAFE_ENCRYPT).unwrap();
        assert_eq!(plain.len(), 224);
        assert_eq!(plain.last(), Some(&19));
        let full = strip_padding(&plain).unwrap();
        assert_eq!(full.len(), 205);
        assert_eq!(&full[..16], b"a8eedb185eb2fecf");
        assert_eq!(&full[16..20], &167u32.to_be_bytes());
        assert_eq!(&full[20..187], SAFE_MSG.as_bytes());
        assert_eq!(&full[187..], APPID.as_bytes());
    }

    #[test]
    fn the_official_encrypted_reply_is_reproduced_byte_for_byte() {
        let crypt = official();
        let encrypt =
            crypt.encrypt_with_random(b"707722b803182950", r#"{"demo_resp":"good luck"}"#);
        assert_eq!(encrypt, REPLY_ENCRYPT);
        assert_eq!(
            signature(&[TOKEN, "1713424427", "415670741", &encrypt]),
            "1b9339964ed2e271e7c7b6ff2b0ef902fc94dea1"
        );
        assert_eq!(
            crypt.decrypt(&encrypt).unwrap(),
            r#"{"demo_resp":"good luck"}"#
        );
    }

    #[test]
    fn every_length_from_0_to_100_bytes_round_trips() {
        let crypt = official();
        for len in 0..=100 {
            let msg = "x".repeat(len);
            let encrypt = crypt.encrypt(&msg);
            let raw = STANDARD.decode(&encrypt).unwrap();
            assert_eq!(raw.len() % 32, 0, "len {len}");
            // Aligned FullStr still gets a whole block of padding.
            let unpadded = 20 + len + APPID.len();
            assert_eq!(raw.len(), unpadded + (32 - unpadded % 32), "len {len}");
            assert_eq!(crypt.decrypt(&encrypt).unwrap(), msg, "len {len}");
        }
    }

    #[test]
    fn a_fullstr_that_is_already_aligned_gets_a_whole_block_of_padding() {
        let crypt = official();
        // 20 + 26 + 18 = 64 bytes.
        let msg = "a".repeat(26);
        let plain = crypt.decrypt_raw(&crypt.encrypt(&msg)).unwrap();
        assert_eq!(plain.len(), 96);
        assert!(plain[64..].iter().all(|&b| b == 32));
    }

    #[test]
    fn cjk_and_emoji_text_round_trips_with_a_byte_length_field() {
        let crypt = official();
        let msg = r#"{"Event":"订阅消息","thing1":"您的订单已发货 🚚"}"#;
        let encrypt = crypt.encrypt(msg);
        assert_eq!(crypt.decrypt(&encrypt).unwrap(), msg);
        let plain = crypt.decrypt_raw(&encrypt).unwrap();
        let len = u32::from_be_bytes(plain[16..20].try_into().unwrap());
        assert_eq!(len as usize, msg.len());
        assert_ne!(msg.len(), msg.chars().count());
    }

    #[test]
    fn two_encryptions_of_the_same_message_differ() {
        let crypt = official();
        assert_ne!(crypt.encrypt("same"), crypt.encrypt("same"));
    }

    #[test]
    fn a_message_sealed_for_another_appid_is_rejected() {
        let theirs = MsgCrypt::new(&"A".repeat(43), "wx0000000000000000").unwrap();
        let encrypt = theirs.encrypt("hello");
        assert_eq!(
            official().decrypt(&encrypt),
            Err(CryptoError::AppIdMismatch)
        );
        // Same key, appid that is a prefix of ours.
        let prefix = MsgCrypt::new(&"A".repeat(43), "wxba5fad812f8e6fb").unwrap();
        assert_eq!(
            official().decrypt(&prefix.encrypt("hello")),
            Err(CryptoError::AppIdMismatch)
        );
        assert_eq!(
            prefix.decrypt(&official().encrypt("hello")),
            Err(CryptoError::AppIdMismatch)
        );
    }

    #[test]
    fn a_message_sealed_with_another_key_is_rejected() {
        let other = MsgCrypt::new(&"B".repeat(43), APPID).unwrap();
        assert!(other.decrypt(SAFE_ENCRYPT).is_err());
    }

    #[test]
    fn tampering_with_the_last_blocks_is_rejected() {
        let crypt = official();
        let raw = STANDARD.decode(SAFE_ENCRYPT).unwrap();
        // Every single-byte change in the last two AES blocks garbles or shifts the pad/appid.
        for i in raw.len() - 32..raw.len() {
            let mut tampered = raw.clone();
            tampered[i] ^= 0x01;
            assert!(
                crypt.decrypt(&STANDARD.encode(&tampered)).is_err(),
                "byte {i} flipped"
            );
        }
    }

    #[test]
    fn tampering_with_the_length_field_is_rejected() {
        let crypt = official();
        let mut raw = STANDARD.decode(SAFE_ENCRYPT).unwrap();
        // In CBC, ciphertext byte i of block 0 flips plaintext byte 16 + i: the length field.
        raw[3] ^= 0x01; // plaintext byte 19: len 167 -> 166
        assert!(crypt.decrypt(&STANDARD.encode(&raw)).is_err());
        raw[3] ^= 0x01;
        raw[2] ^= 0x80; // len grows past the buffer
        assert_eq!(
            crypt.decrypt(&STANDARD.encode(&raw)),
            Err(CryptoError::BadLength)
        );
    }

    #[test]
    fn truncated_or_malformed_ciphertext_is_rejected_without_panicking() {
        let crypt = official();
        let raw = STANDARD.decode(SAFE_ENCRYPT).unwrap();
        assert_eq!(crypt.decrypt(""), Err(CryptoError::BadLength));
        assert_eq!(crypt.decrypt("not base64!"), Err(CryptoError::BadBase64));
        assert_eq!(
            crypt.decrypt(&STANDARD.encode(&raw[..raw.len() - 16])),
            Err(CryptoError::BadLength)
        );
        assert_eq!(
            crypt.decrypt(&STANDARD.encode(&raw[..raw.len() - 1])),
            Err(CryptoError::BadLength)
        );
        for cut in (32..raw.len()).step_by(32) {
            assert!(
                crypt.decrypt(&STANDARD.encode(&raw[..cut])).is_err(),
                "cut {cut}"
            );
        }
        // One block whose plaintext is too short to hold random and length.
        let short = STANDARD.encode([0u8; 32]);
        assert!(crypt.decrypt(&short).is_err());
    }

    #[test]
    fn padding_outside_1_to_32_or_uneven_is_rejected() {
        assert_eq!(strip_padding(&[]), Err(CryptoError::BadPadding));
        assert_eq!(strip_padding(&[1, 2, 0]), Err(CryptoError::BadPadding));
        assert_eq!(strip_padding(&[33; 64]), Err(CryptoError::BadPadding));
        assert_eq!(strip_padding(&[3, 3]), Err(CryptoError::BadPadding));
        assert_eq!(strip_padding(&[9, 2, 3, 3]), Err(CryptoError::BadPadding));
        assert_eq!(strip_padding(&[9, 3, 3, 3]).unwrap(), &[9]);
        assert_eq!(strip_padding(&[32; 32]).unwrap(), &[] as &[u8]);
    }

    #[test]
    fn invalid_utf8_in_the_message_is_rejected() {
        let crypt = official();
        // Build a FullStr by hand with a lone continuation byte as the message.
        let mut full = Vec::new();
        full.extend_from_slice(&[7u8; 16]);
        full.extend_from_slice(&1u32.to_be_bytes());
        full.push(0x80);
        full.extend_from_slice(APPID.as_bytes());
        let pad = 32 - full.len() % 32;
        full.resize(full.len() + pad, pad as u8);
        let len = full.len();
        let ct = Aes256CbcEnc::new(&crypt.key.into(), &crypt.iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut full, len)
            .unwrap()
            .to_vec();
        assert_eq!(
            crypt.decrypt(&STANDARD.encode(ct)),
            Err(CryptoError::BadUtf8)
        );
    }

    #[test]
    fn keys_of_the_wrong_length_or_alphabet_are_rejected() {
        for key in [
            String::new(),
            "A".repeat(42),
            "A".repeat(44),
            "A".repeat(32),
            format!("{}=", "A".repeat(42)),
            format!("{}!", "A".repeat(42)),
            format!("{}-", "A".repeat(42)), // URL-safe alphabet is not accepted
            format!("{}é", "A".repeat(41)), // 43 bytes, but not base64
        ] {
            assert_eq!(
                MsgCrypt::new(&key, APPID).map(|_| ()),
                Err(CryptoError::BadKey),
                "{key:?}"
            );
        }
    }

    #[test]
    fn a_key_with_trailing_bits_set_is_accepted_as_the_sdks_do() {
        // 'B' sets one of the two bits past the 32nd byte; it decodes to the same key as 'A'.
        let lenient = MsgCrypt::new(&format!("{}B", "A".repeat(42)), APPID).unwrap();
        assert_eq!(lenient.decrypt(SAFE_ENCRYPT).unwrap(), SAFE_MSG);
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let crypt = MsgCrypt::new("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", APPID).unwrap();
        let shown = format!("{crypt:?}");
        assert_eq!(
            shown,
            r#"MsgCrypt { key: [redacted], appid: "wxba5fad812f8e6fb9" }"#
        );
    }
}
