//! The kernel against the plain nested loop of the dataset contract.

use super::*;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt16Type};
use arrow_array::{ArrayRef, LargeListArray, ListArray};
use proptest::prelude::*;

/// One expected output row.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    input: Vec<i64>,
    target: Vec<i64>,
    doc: i64,
    start: i64,
    mask: Vec<u8>,
    pos: Vec<i32>,
    seg: Vec<i32>,
}

/// The plain nested loop of docs/format.md §1.1–1.3, written from its text.
fn reference(docs: &[Vec<i64>], spec: &WindowSpec) -> Vec<Row> {
    // Streams of (token, doc, position in doc).
    let mut streams: Vec<Vec<(i64, i64, i32)>> = Vec::new();
    if spec.pack {
        let mut s = Vec::new();
        for (d, doc) in docs.iter().enumerate() {
            for (p, &t) in doc.iter().enumerate() {
                s.push((t, d as i64, p as i32));
            }
            if let Some(sep) = spec.separator {
                s.push((sep, d as i64, doc.len() as i32));
            }
        }
        streams.push(s);
    } else {
        for (d, doc) in docs.iter().enumerate() {
            streams.push(
                doc.iter()
                    .enumerate()
                    .map(|(p, &t)| (t, d as i64, p as i32))
                    .collect(),
            );
        }
    }
    let (l, stride) = (spec.seq_len, spec.stride);
    let mut rows = Vec::new();
    for s in &streams {
        let n = s.len();
        let make = |start: usize, len: usize| {
            let mut seg = Vec::new();
            let mut k = 0;
            for j in 0..len {
                if j > 0 && s[start + j].1 != s[start + j - 1].1 {
                    k += 1;
                }
                seg.push(k);
            }
            let mut input: Vec<i64> = s[start..start + len].iter().map(|x| x.0).collect();
            let mut target: Vec<i64> = s[start + 1..start + len + 1].iter().map(|x| x.0).collect();
            let mut pos: Vec<i32> = s[start..start + len].iter().map(|x| x.2).collect();
            let mut mask = vec![1u8; len];
            input.resize(l, spec.pad_id);
            target.resize(l, spec.ignore_index);
            pos.resize(l, 0);
            seg.resize(l, -1);
            mask.resize(l, 0);
            Row {
                input,
                target,
                doc: s[start].1,
                start: start as i64,
                mask,
                pos,
                seg,
            }
        };
        let mut start = 0;
        let mut last_target = None;
        while start + l < n {
            rows.push(make(start, l));
            last_target = Some(start + l);
            start += stride;
        }
        if spec.remainder == Remainder::Pad && n > 0 && last_target != Some(n - 1) && start + 1 < n
        {
            rows.push(make(start, n - 1 - start));
        }
    }
    rows
}

fn rows_of(batch: &RecordBatch, spec: &WindowSpec) -> Vec<Row> {
    let list = |name: &str| -> Vec<Vec<i64>> {
        let Some(c) = batch.column_by_name(name) else {
            return vec![Vec::new(); batch.num_rows()];
        };
        let c = arrow_cast::cast::cast(
            c,
            &DataType::new_fixed_size_list(DataType::Int64, spec.seq_len as i32, false),
        )
        .unwrap();
        let c = c.as_fixed_size_list();
        (0..c.len())
            .map(|i| c.value(i).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    };
    let (input, target, mask, pos, seg) = (
        list("input"),
        list("target"),
        list("loss_mask"),
        list("position_ids"),
        list("segment_ids"),
    );
    let doc = batch
        .column_by_name("doc_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let start = batch
        .column_by_name("start")
        .unwrap()
        .as_primitive::<Int64Type>();
    (0..batch.num_rows())
        .map(|i| Row {
            input: input[i].clone(),
            target: target[i].clone(),
            doc: doc.value(i),
            start: start.value(i),
            mask: mask[i].iter().map(|&v| v as u8).collect(),
            pos: pos[i].iter().map(|&v| v as i32).collect(),
            seg: seg[i].iter().map(|&v| v as i32).collect(),
        })
        .collect()
}

fn spec_for(
    seq_len: usize,
    stride: usize,
    pad: bool,
    pack: bool,
    separator: Option<i64>,
) -> WindowSpec {
    let mut spec = WindowSpec::new(seq_len);
    spec.stride = stride;
    spec.pack = pack;
    spec.separator = if pack { separator } else { None };
    spec.remainder = if pad { Remainder::Pad } else { Remainder::Drop };
    spec.dtype = TokenDtype::Int64;
    spec.columns = ExtraColumn::ALL.to_vec();
    spec
}

fn normalise(mut rows: Vec<Row>, spec: &WindowSpec) -> Vec<Row> {
    // Without packing, position ids are offsets in the document.
    if !spec.pack {
        for r in &mut rows {
            for (j, p) in r.pos.iter_mut().enumerate() {
                if r.mask[j] == 1 {
                    *p = r.start as i32 + j as i32;
                }
            }
        }
    }
    rows
}

#[test]
fn hello_world_gives_the_spec_windows() {
    let docs = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(
        [8, 5, 12, 12, 15, 23, 15, 18, 12, 4].map(Some),
    )]);
    let mut spec = WindowSpec::new(4);
    spec.stride = 1;
    let b = windows(&docs, &spec).unwrap();
    let input = b.column(0).as_fixed_size_list();
    let target = b.column(1).as_fixed_size_list();
    let got: Vec<(Vec<i32>, Vec<i32>)> = (0..b.num_rows())
        .map(|i| {
            (
                input.value(i).as_primitive::<Int32Type>().values().to_vec(),
                target
                    .value(i)
                    .as_primitive::<Int32Type>()
                    .values()
                    .to_vec(),
            )
        })
        .collect();
    let t = [8, 5, 12, 12, 15, 23, 15, 18, 12, 4];
    let expected: Vec<(Vec<i32>, Vec<i32>)> = (0..6)
        .map(|s| (t[s..s + 4].to_vec(), t[s + 1..s + 5].to_vec()))
        .collect();
    assert_eq!(got, expected);
    spec.stride = 4;
    let b = windows(&docs, &spec).unwrap();
    assert_eq!(b.num_rows(), 2);
    let input = b.column(0).as_fixed_size_list();
    assert_eq!(
        input.value(0).as_primitive::<Int32Type>().values(),
        &[8, 5, 12, 12]
    );
    assert_eq!(
        input.value(1).as_primitive::<Int32Type>().values(),
        &[15, 23, 15, 18]
    );
}

#[test]
fn bad_tokens_name_the_row() {
    let docs = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        Some(vec![Some(3), Some(-4)]),
    ]);
    let e = decode_tokens::<i32>(&docs, TokenDtype::Int32, None).unwrap_err();
    assert_eq!(e, TokenError::Negative { row: 1, value: -4 });
    let e = decode_tokens::<i32>(&docs.slice(0, 1), TokenDtype::Int32, Some(2)).unwrap_err();
    assert_eq!(
        e,
        TokenError::OutOfVocab {
            row: 0,
            value: 2,
            vocab_size: 2
        }
    );
    let big = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(70_000)])]);
    let e = decode_tokens::<u16>(&big, TokenDtype::Uint16, None).unwrap_err();
    assert_eq!(
        e,
        TokenError::TooLarge {
            row: 0,
            value: 70_000,
            dtype: "uint16"
        }
    );
    let nulls = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![Some(1)]), None]);
    assert_eq!(
        decode_tokens::<i32>(&nulls, TokenDtype::Int32, None).unwrap_err(),
        TokenError::NullDocument { row: 1 }
    );
    let null_tok = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1)]),
        Some(vec![Some(1), None]),
    ]);
    assert_eq!(
        decode_tokens::<i32>(&null_tok, TokenDtype::Int32, None).unwrap_err(),
        TokenError::NullToken { row: 1 }
    );
}

fn docs_strategy() -> impl Strategy<Value = Vec<Vec<i64>>> {
    prop::collection::vec(prop::collection::vec(0i64..60, 0..40), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn kernel_equals_the_plain_loop(
        docs in docs_strategy(),
        seq_len in 1usize..10,
        stride in 1usize..14,
        pad in any::<bool>(),
        pack in any::<bool>(),
        separator in proptest::option::of(60i64..64),
        input_type in 0usize..3,
    ) {
        let spec = spec_for(seq_len, stride, pad, pack, separator);
        let array: ArrayRef = match input_type {
            0 => Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(docs.iter().map(|d| Some(d.iter().map(|&t| Some(t)))))),
            1 => Arc::new(ListArray::from_iter_primitive::<UInt16Type, _, _>(docs.iter().map(|d| Some(d.iter().map(|&t| Some(t as u16)))))),
            _ => Arc::new(LargeListArray::from_iter_primitive::<Int32Type, _, _>(docs.iter().map(|d| Some(d.iter().map(|&t| Some(t as i32)))))),
        };
        let batch = windows(array.as_ref(), &spec).unwrap();
        let got = rows_of(&batch, &spec);
        let expected = normalise(reference(&docs, &spec), &spec);
        prop_assert_eq!(&got, &expected);
        for r in &got {
            // target[i] == input[i + 1] wherever both are real tokens.
            for i in 0..seq_len - 1 {
                if r.mask[i + 1] == 1 {
                    prop_assert_eq!(r.target[i], r.input[i + 1]);
                }
            }
        }
        if !pack && !pad {
            let formula: usize = docs.iter().map(|d| if d.len() > seq_len { (d.len() - seq_len - 1) / stride + 1 } else { 0 }).sum();
            prop_assert_eq!(got.len(), formula);
        }
    }

    #[test]
    fn flat_column_is_one_document(tokens in prop::collection::vec(0i64..60, 0..80), seq_len in 1usize..8, stride in 1usize..9, pad in any::<bool>()) {
        let spec = spec_for(seq_len, stride, pad, false, None);
        let array = Int64Array::from(tokens.clone());
        let got = rows_of(&windows(&array, &spec).unwrap(), &spec);
        prop_assert_eq!(got, normalise(reference(&[tokens], &spec), &spec));
    }

    #[test]
    fn streaming_in_pieces_equals_one_piece(
        docs in docs_strategy(),
        seq_len in 1usize..8,
        stride in 1usize..10,
        pad in any::<bool>(),
        pack in any::<bool>(),
        cut in 1usize..7,
    ) {
        // Feeding tokens in small pieces with seals in between (as the
        // pipeline does across row groups) must not change anything.
        let spec = spec_for(seq_len, stride, pad, pack, Some(61));
        let batch = Arc::new(DocBatch { ids: Arc::new(Int64Array::from_iter_values(0..docs.len() as i64)), carry: vec![] });
        let mut w = Windower::<i64>::new(&spec, Starts::Uniform);
        for (d, doc) in docs.iter().enumerate() {
            w.begin_doc(DocRef { batch: Arc::clone(&batch), row: d });
            for piece in doc.chunks(cut) {
                w.extend(piece);
                w.seal();
            }
            w.end_doc();
            w.seal();
        }
        w.finish();
        let layout = OutputLayout::new(&spec, &DataType::Int64, &[], false);
        let got = rows_of(&materialize(&w.take_ready(), &layout, &[]).unwrap(), &spec);
        prop_assert_eq!(got, normalise(reference(&docs, &spec), &spec));
        let a = w.account();
        prop_assert_eq!(a.tokens_in, a.tokens_targeted + a.tokens_never_targeted);
    }

    #[test]
    fn compacted_windows_read_what_they_read_before(
        docs in docs_strategy(),
        seq_len in 1usize..8,
        stride in 1usize..10,
        pad in any::<bool>(),
        pack in any::<bool>(),
        keep in prop::collection::vec(any::<bool>(), 64),
    ) {
        // Windows moved onto chunks of their own (a subset, as a partition's
        // queue holds after a row group was cut) give the same rows: tokens,
        // documents, positions and segments.
        let spec = spec_for(seq_len, stride, pad, pack, Some(61));
        let batch = Arc::new(DocBatch { ids: Arc::new(Int64Array::from_iter_values(0..docs.len() as i64)), carry: vec![] });
        let mut w = Windower::<i64>::new(&spec, Starts::Uniform);
        for (d, doc) in docs.iter().enumerate() {
            w.begin_doc(DocRef { batch: Arc::clone(&batch), row: d });
            w.extend(doc);
            w.end_doc();
        }
        w.finish();
        let all = w.take_ready();
        let subset: Vec<_> = all.iter().enumerate().filter(|(i, _)| keep[i % keep.len()]).map(|(_, w)| w.clone()).collect();
        let mut compacted = subset.clone();
        compact(&mut compacted);
        let layout = OutputLayout::new(&spec, &DataType::Int64, &[], false);
        let expected = rows_of(&materialize(&subset, &layout, &[]).unwrap(), &spec);
        prop_assert_eq!(rows_of(&materialize(&compacted, &layout, &[]).unwrap(), &spec), expected);
    }
}
