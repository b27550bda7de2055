//! Encoding: messages to framed bytes, with the size limit checked.

use bytes::{BufMut, BytesMut};
use serde::Serialize;
use tokio_util::codec::Encoder;

use super::{Codec, Format, Framing};
use crate::Error;
use crate::message::Message;

impl Encoder<&Message> for Codec {
    type Error = Error;

    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_value(item, dst)
    }
}

impl Encoder<&[Message]> for Codec {
    type Error = Error;

    fn encode(&mut self, item: &[Message], dst: &mut BytesMut) -> Result<(), Error> {
        self.encode_value(item, dst)
    }
}

impl Codec {
    /// Appends one frame holding `value` (a message or a batch array) to `dst`.
    ///
    /// On error `dst` is left as it was.
    pub fn encode_value<T: Serialize + ?Sized>(&self, value: &T, dst: &mut BytesMut) -> Result<(), Error> {
        let start = dst.len();
        let result = self.encode_unchecked(value, dst, start);
        if result.is_err() {
            dst.truncate(start);
        }
        result
    }

    fn encode_unchecked<T: Serialize + ?Sized>(
        &self,
        value: &T,
        dst: &mut BytesMut,
        start: usize,
    ) -> Result<(), Error> {
        match (self.framing, self.format) {
            (Framing::Lines, _) => {
                serde_json::to_writer(dst.writer(), value).map_err(|e| Error::Encode(e.to_string()))?;
                self.check(dst.len() - start)?;
                // Newlines can only be JSON whitespace here (inside strings they are escaped).
                let mut at = start;
                while let Some(off) = memchr::memchr2(b'\n', b'\r', &dst[at..]) {
                    dst[at + off] = b' ';
                    at += off + 1;
                }
                dst.put_u8(b'\n');
            }
            (Framing::LengthPrefixed, Format::Json) => {
                dst.put_u32(0);
                serde_json::to_writer(dst.writer(), value).map_err(|e| Error::Encode(e.to_string()))?;
                self.patch_length(dst, start)?;
            }
            (Framing::LengthPrefixed, Format::MessagePack) => {
                let json = serde_json::to_vec(value).map_err(|e| Error::Encode(e.to_string()))?;
                dst.put_u32(0);
                let mut de = serde_json::Deserializer::from_slice(&json);
                let mut ser = rmp_serde::Serializer::new(dst.writer());
                serde_transcode::transcode(&mut de, &mut ser).map_err(|e| Error::Encode(e.to_string()))?;
                self.patch_length(dst, start)?;
            }
        }
        Ok(())
    }

    fn check(&self, size: usize) -> Result<(), Error> {
        if size > self.max_message_size {
            return Err(Error::TooLarge { size, limit: self.max_message_size });
        }
        Ok(())
    }

    fn patch_length(&self, dst: &mut BytesMut, start: usize) -> Result<(), Error> {
        let len = dst.len() - start - 4;
        self.check(len)?;
        dst[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }
}
