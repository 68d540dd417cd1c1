//! The window kernel alone (`seqwin::window::windows`): tokens/s and output
//! bytes/s, against a plain memcpy of the same number of output bytes: between
//! two preallocated buffers (`memcpy`, pure bandwidth) and into a fresh
//! buffer (`memcpy_alloc`, which like the kernel pays for its allocation).
//!
//! `cargo bench --bench kernel`

use std::hint::black_box;

use arrow_array::types::Int32Type;
use arrow_array::ListArray;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use seqwin::window::WindowSpec;

/// 4 M tokens in documents of 700..1700 tokens.
fn corpus() -> ListArray {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut docs = Vec::new();
    let mut total = 0;
    while total < 4_000_000 {
        let n = 700 + (next() % 1000) as usize;
        total += n;
        docs.push(Some(
            (0..n)
                .map(|_| Some((next() % 50257) as i32))
                .collect::<Vec<_>>(),
        ));
    }
    ListArray::from_iter_primitive::<Int32Type, _, _>(docs)
}

fn bench(c: &mut Criterion) {
    // The seqwin binary keeps freed buffers in the heap (see `tune_allocator`
    // in src/main.rs); measure the kernel under the same allocator settings,
    // or every iteration pays page faults that memcpy's single buffer does not.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
    let docs = corpus();
    let tokens = docs.values().len() as u64;
    for (seq_len, stride) in [(1024usize, 1024usize), (128, 64), (128, 16)] {
        let mut spec = WindowSpec::new(seq_len);
        spec.stride = stride;
        let out = seqwin::window::windows(&docs, &spec).unwrap();
        let out_bytes = (out.num_rows() * seq_len * 4 * 2) as u64;
        let name = format!("L{seq_len}_S{stride}");

        let mut g = c.benchmark_group("kernel_tokens");
        g.throughput(Throughput::Elements(tokens));
        g.sample_size(10);
        g.bench_with_input(BenchmarkId::new("windows", &name), &spec, |b, spec| {
            b.iter(|| black_box(seqwin::window::windows(black_box(&docs), spec).unwrap()))
        });
        g.finish();

        let mut g = c.benchmark_group("kernel_bytes");
        g.throughput(Throughput::Bytes(out_bytes));
        g.sample_size(10);
        g.bench_with_input(BenchmarkId::new("windows", &name), &spec, |b, spec| {
            b.iter(|| black_box(seqwin::window::windows(black_box(&docs), spec).unwrap()))
        });
        // memcpy of the same number of bytes between two buffers that are
        // already allocated and touched: pure memory bandwidth, the strict bar.
        let src = vec![7u8; out_bytes as usize];
        let mut dst = vec![0u8; out_bytes as usize];
        g.bench_function(BenchmarkId::new("memcpy", &name), |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&src));
                black_box(&dst);
            })
        });
        // memcpy into a fresh buffer, as the kernel's output is.
        g.bench_function(BenchmarkId::new("memcpy_alloc", &name), |b| {
            b.iter(|| black_box(black_box(&src).to_vec()))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
