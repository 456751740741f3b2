//! Layer decompression chosen by magic bytes, not by media type: registries and tools disagree
//! on media types often enough (Docker's `tar.gzip`, uncompressed layers labelled gzip), while
//! the first bytes of a blob never lie.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Wraps a layer blob in the decoder its first bytes call for (gzip, zstd or plain tar).
pub(crate) fn open_layer(blob: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    decoder(blob)
}

/// Where a tar stream really ended, when it ended without its end-of-archive blocks.
#[derive(Clone, Default)]
pub(crate) struct TarEnd(Arc<AtomicU64>);

impl TarEnd {
    const NOT_PADDED: u64 = u64::MAX;

    /// The length of the stream as written, if the reader had to complete its last block.
    pub fn padded_at(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            Self::NOT_PADDED => None,
            n => Some(n),
        }
    }
}

/// Some writers (umoci 0.4 among them) stop a layer's tar stream right after the last
/// entry's data, without padding it to a block or writing the two zero end blocks; Go's tar
/// reader accepts that, the `tar` crate does not. This adds the missing zeros and records
/// where the real stream ended, so the caller can check no entry's data was cut short.
pub(crate) struct TarTail<R> {
    inner: R,
    read: u64,
    zeros_left: Option<u64>,
    end: TarEnd,
}

impl<R: Read> TarTail<R> {
    pub fn new(inner: R) -> (Self, TarEnd) {
        let end = TarEnd(Arc::new(AtomicU64::new(TarEnd::NOT_PADDED)));
        let tail = TarTail {
            inner,
            read: 0,
            zeros_left: None,
            end: end.clone(),
        };
        (tail, end)
    }
}

impl<R: Read> Read for TarTail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(left) = self.zeros_left.as_mut() {
            let n = (*left).min(buf.len() as u64) as usize;
            buf[..n].fill(0);
            *left -= n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if n > 0 || buf.is_empty() {
            self.read += n as u64;
            return Ok(n);
        }
        let to_block = (512 - self.read % 512) % 512;
        if to_block > 0 {
            self.end.0.store(self.read, Ordering::Relaxed);
        }
        self.zeros_left = Some(to_block + 1024);
        self.read(buf)
    }
}

fn decoder(blob: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut reader = BufReader::with_capacity(256 * 1024, blob);
    let head = reader.fill_buf()?;
    if head.starts_with(&GZIP_MAGIC) {
        // MultiGzDecoder: a gzip stream may legally hold several members (pigz, pgzip).
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else if head.starts_with(&ZSTD_MAGIC) {
        Ok(Box::new(ZstdFrames::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// A zstd stream of one or more frames (skippable frames skipped), decoded incrementally.
struct ZstdFrames<R: BufRead> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        ZstdFrames {
            source,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }

    /// Starts the next frame; false at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped =
                        io::copy(&mut (&mut self.source).take(length.into()), &mut io::sink())?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd: truncated skippable frame",
                        ));
                    }
                }
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                let wanted = buf.len() - self.decoder.can_collect();
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(wanted))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() {
                self.in_frame = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        open_layer(Box::new(io::Cursor::new(bytes)))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn plain_gzip_and_multi_frame_zstd_decode_to_the_same_bytes() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        assert_eq!(decode(data.clone()), data);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &data).unwrap();
        assert_eq!(decode(gz.finish().unwrap()), data);

        let level = ruzstd::encoding::CompressionLevel::Fastest;
        let (first, second) = data.split_at(300_001);
        let mut zst = ruzstd::encoding::compress_to_vec(first, level);
        // A skippable frame between two data frames, as zstd:chunked writes them.
        zst.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
        zst.extend(ruzstd::encoding::compress_to_vec(second, level));
        assert_eq!(decode(zst), data);
    }
}
