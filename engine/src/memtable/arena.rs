//! Append-only value storage in large chunks, so that inserting a value does not allocate.
//! A chunk is never reallocated once created; values are addressed by (chunk, offset, len).

const CHUNK_BYTES: usize = 1 << 20;

/// Where a value lives inside the arena.
#[derive(Clone, Copy, Debug)]
pub struct ValueRef {
    chunk: u32,
    offset: u32,
    len: u32,
}

impl ValueRef {
    /// Length of the value in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }
}

/// Chunked byte arena.
pub struct Arena {
    chunks: Vec<Vec<u8>>,
    allocated: usize,
}

impl Arena {
    /// An empty arena (no chunk allocated until the first push).
    pub fn new() -> Self {
        Arena {
            chunks: Vec::new(),
            allocated: 0,
        }
    }

    /// Copies `value` in and returns where it went.
    pub fn push(&mut self, value: &[u8]) -> ValueRef {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= value.len());
        if !fits {
            let cap = CHUNK_BYTES.max(value.len());
            self.chunks.push(Vec::with_capacity(cap));
            self.allocated += cap;
        }
        let chunk_index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_index];
        let offset = chunk.len();
        chunk.extend_from_slice(value);
        ValueRef {
            chunk: chunk_index as u32,
            offset: offset as u32,
            len: value.len() as u32,
        }
    }

    /// The bytes of a stored value.
    pub fn get(&self, r: ValueRef) -> &[u8] {
        let start = r.offset as usize;
        &self.chunks[r.chunk as usize][start..start + r.len as usize]
    }

    /// Hints the CPU to start loading the first cache lines of a stored value.
    #[inline]
    pub fn prefetch(&self, r: ValueRef) {
        if let Some(chunk) = self.chunks.get(r.chunk as usize) {
            let start = chunk.as_ptr().wrapping_add(r.offset as usize);
            crate::prefetch::prefetch_read(start);
            if r.len > 64 {
                crate::prefetch::prefetch_read(start.wrapping_add(64));
            }
        }
    }

    /// Bytes reserved by chunks.
    pub fn allocated_bytes(&self) -> usize {
        self.allocated
    }
}
