//! The rules of the pipeline file, one per test, checked by parsing strings:
//! each broken rule gives exactly the expected problems, naming the key.

use std::path::Path;

use super::*;
use crate::window::{ExtraColumn, Remainder};
use parquet::basic::ZstdLevel;

const SOURCE: &str = "source: {path: data, tokens: tokens, id: doc_id, carry: [source]}\n";
const SINK: &str = "sink: {path: out}\n";

fn config(yaml: &str) -> PipelineConfig {
    PipelineConfig::parse_str(yaml, Path::new("/p/p.yaml")).expect("valid YAML")
}

/// The problems of a pipeline whose `windows:` and extra sections are given.
fn problems_of(yaml: &str) -> Vec<String> {
    match Plan::try_new(config(yaml), Path::new("/p/p.yaml")) {
        Ok(_) => Vec::new(),
        Err(Error::ConfigInvalid { path, problems }) => {
            assert_eq!(path, Path::new("/p/p.yaml"));
            problems
        }
        Err(other) => panic!("expected ConfigInvalid, got {other}"),
    }
}

fn with_windows(windows: &str, rest: &str) -> Vec<String> {
    problems_of(&format!("{SOURCE}windows: {{{windows}}}\n{rest}{SINK}"))
}

/// The problems of a pipeline with a `split:` section `split` written to
/// `sink.partition_by: [split]`.
fn with_split(split: &str) -> Vec<String> {
    problems_of(&format!(
        "{SOURCE}windows: {{seq_len: 4}}\n{split}sink: {{path: out, partition_by: [split]}}\n"
    ))
}

/// The problems of a pipeline whose `sink:` section is given.
fn with_sink(sink: &str) -> Vec<String> {
    problems_of(&format!("{SOURCE}windows: {{seq_len: 4}}\nsink: {sink}\n"))
}

#[test]
fn a_valid_pipeline_keeps_what_the_user_wrote() {
    let plan = Plan::try_new(
        config(&format!(
            "{SOURCE}windows: {{seq_len: 8, remainder: pad}}\n{SINK}"
        )),
        Path::new("/p/p.yaml"),
    )
    .unwrap();
    assert_eq!(plan.window.stride, 8);
    assert!(!plan.window.stride_given);
    assert_eq!(plan.window.remainder, Remainder::Pad);
    // Padding always writes the loss mask.
    assert_eq!(plan.window.columns, vec![ExtraColumn::LossMask]);
    assert_eq!(plan.source.path, Location::Local("/p/data".into()));
    assert_eq!(plan.sink.path, Location::Local("/p/out".into()));
    assert_eq!(plan.order, RowOrder::Source);
    // 8192 rows capped at 4 MiB of window data: 2 × 8 × 4 bytes per row.
    assert_eq!(plan.sink.row_group_rows, 8192);
    let given = Plan::try_new(
        config(&format!(
            "{SOURCE}windows: {{seq_len: 8, stride: 8}}\n{SINK}"
        )),
        Path::new("/p/p.yaml"),
    )
    .unwrap();
    assert!(given.window.stride_given);
}

#[test]
fn seq_len_and_stride_ranges() {
    assert_eq!(
        with_windows("seq_len: 0, stride: -2", ""),
        [
            "`windows.seq_len` must be at least 1, got 0",
            "`windows.stride` must be at least 1, got -2",
        ]
    );
    assert_eq!(
        with_windows("seq_len: 1000000000", ""),
        ["`windows.seq_len` must be at most 16777216, got 1000000000"]
    );
}

#[test]
fn values_must_fit_the_output_type() {
    assert_eq!(
        with_windows(
            "seq_len: 4, dtype: uint16, remainder: pad, pad_id: 70000, ignore_index: 0",
            ""
        ),
        ["`windows.pad_id` 70000 does not fit dtype uint16 (0..=65535)"]
    );
    assert_eq!(
        with_windows("seq_len: 4, dtype: uint32, remainder: pad", ""),
        ["`windows.ignore_index` -100 does not fit dtype uint32 (0..=4294967295); set an ignore_index the dtype holds or use int32/int64"]
    );
    assert_eq!(
        with_windows(
            "seq_len: 4, dtype: uint16, pack: true, separator: 65536",
            ""
        ),
        ["`windows.separator` 65536 must be a token id that fits dtype uint16 (0..=65535)"]
    );
    assert_eq!(
        with_windows("seq_len: 4, dtype: uint16, vocab_size: 70000", ""),
        ["`windows.vocab_size` 70000 does not fit dtype uint16 (largest id 65535); use a wider dtype"]
    );
}

#[test]
fn a_separator_needs_packing_and_the_vocabulary() {
    assert_eq!(
        with_windows("seq_len: 4, separator: 5, vocab_size: 5", ""),
        [
            "`windows.separator` 5 must be below `windows.vocab_size` 5",
            "`windows.separator` is only used when packing: set `windows.pack: true` or remove it",
        ]
    );
    // tbptt packs, so a separator is fine there.
    assert_eq!(
        with_windows("seq_len: 4, separator: 5", "tbptt: {batch_size: 2}\n"),
        Vec::<String>::new()
    );
}

#[test]
fn columns_listed_twice() {
    assert_eq!(
        with_windows("seq_len: 4, columns: [start, doc_id, start]", ""),
        ["`windows.columns` lists `start` twice"]
    );
}

#[test]
fn split_fractions() {
    assert_eq!(
        with_split("split: {fractions: {train: 0.7, val: 0.2}}\n"),
        ["`split.fractions` must sum to 1, got 0.9"]
    );
    assert_eq!(
        with_split("split: {fractions: {train: 1.5, val: -0.5}}\n"),
        [
            "`split.fractions.train` must be in (0, 1], got 1.5",
            "`split.fractions.val` must be in (0, 1], got -0.5",
        ]
    );
    assert_eq!(
        with_split("split: {fractions: {}}\n"),
        ["`split.fractions` must name at least one split"]
    );
}

#[test]
fn row_orders() {
    assert_eq!(
        with_windows("seq_len: 4", "shuffle: {seed: 1}\ntbptt: {batch_size: 2}\n"),
        ["`shuffle` and `tbptt` exclude each other: tbptt fixes the row order"]
    );
    assert_eq!(
        with_windows(
            "seq_len: 4, stride: 2, remainder: pad",
            "tbptt: {batch_size: 0}\n"
        ),
        [
            "`tbptt.batch_size` must be at least 1, got 0",
            "`tbptt` requires `windows.stride` equal to `windows.seq_len` (4), got 2",
            "`tbptt` requires `windows.remainder: drop`",
        ]
    );
    assert_eq!(
        with_windows("seq_len: 4", "shuffle: {memory_mb: 0}\n"),
        ["`shuffle.memory_mb` must be between 1 and 4194304, got 0"]
    );
}

#[test]
fn carried_and_partition_columns() {
    assert_eq!(
        problems_of(
            "source: {path: data, tokens: tokens, carry: [input, tokens, a, a]}\nwindows: {seq_len: 4}\nsink: {path: out, partition_by: [split, lang, split]}\n"
        ),
        [
            "`source.carry` column `input` clashes with a column seqwin writes (input, target, doc_id, start, loss_mask, position_ids, segment_ids, lane, step, split)",
            "`source.carry` cannot carry the token column `tokens`",
            "`source.carry` lists `a` twice",
            "`sink.partition_by` names `split` but there is no `split` section",
            "`sink.partition_by` column `lang` is neither `split` nor a carried column (source.carry: [input, tokens, a, a])",
            "`sink.partition_by` lists `split` twice",
            "`sink.partition_by` names `split` but there is no `split` section",
        ]
    );
}

#[test]
fn paths_schemes_and_storage_options() {
    assert_eq!(
        problems_of(
            "source: {path: 'hdfs://cluster/corpus', tokens: tokens, storage_options: {region: x}}\nwindows: {seq_len: 4}\nsink: {path: out, storage_options: {max_retries: 2}}\n"
        ),
        [
            "`source.path`: unsupported URL scheme `hdfs://` (supported: file, s3, s3a, gs, az, azure, abfs, abfss)",
            "`sink.storage_options` is only used with an object store path (s3://, gs://, az://)",
        ]
    );
    assert_eq!(
        problems_of("source: {path: '', tokens: ''}\nwindows: {seq_len: 4}\nsink: {path: ''}\n"),
        [
            "`source.tokens` must name a column",
            "`source.path` must not be empty",
            "`sink.path` must not be empty",
        ]
    );
}

#[test]
fn compression_names_and_levels() {
    let compression = |sink: &str| {
        Plan::try_new(
            config(&format!("{SOURCE}windows: {{seq_len: 4}}\nsink: {sink}\n")),
            Path::new("/p/p.yaml"),
        )
        .unwrap()
        .sink
        .compression
    };
    let zstd = |l| Compression::ZSTD(ZstdLevel::try_new(l).unwrap());
    // Not given: `auto`, zstd(1) but none on the delta-packed lists.
    let auto = Compressions {
        columns: zstd(1),
        delta_lists: Compression::UNCOMPRESSED,
    };
    assert_eq!(compression("{path: out}"), auto);
    assert_eq!(compression("{path: out, compression: AUTO}"), auto);
    // A codec the user names applies to every column.
    let every = |c| Compressions {
        columns: c,
        delta_lists: c,
    };
    assert_eq!(
        compression("{path: out, compression: zstd}"),
        every(zstd(1))
    );
    assert_eq!(
        compression("{path: out, compression: 'zstd(7)'}"),
        every(zstd(7))
    );
    assert_eq!(
        compression("{path: out, compression: none}"),
        every(Compression::UNCOMPRESSED)
    );
    assert_eq!(
        compression("{path: out, compression: LZ4}"),
        every(Compression::LZ4_RAW)
    );
    let bad = with_sink("{path: out, compression: 'zstd(30)'}");
    assert_eq!(
        bad,
        ["`sink.compression`: `zstd(30)` is not supported; expected auto, zstd, zstd(1..22), snappy, lz4, gzip, gzip(0..9) or none"]
    );
    assert_eq!(
        parse_compression("zstd(x)").unwrap_err(),
        "cannot read a level in `zstd(x)`"
    );
}

#[test]
fn syntax_errors_name_line_and_column() {
    let e = PipelineConfig::parse_str(
        "source:\n  path: [data\nwindows: {seq_len: 4}\n",
        Path::new("/p/p.yaml"),
    )
    .unwrap_err();
    let text = e.to_string();
    // `path:` wants a string; a flow sequence starts at line 2, column 9.
    assert!(
        text.starts_with("/p/p.yaml: line 2 column 9: expected string scalar"),
        "{text}"
    );
    let e = PipelineConfig::parse_str(
        &format!("{SOURCE}windows:\n  seq_len: 4\n  seqlen: 8\n{SINK}"),
        Path::new("/p/p.yaml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("/p/p.yaml: line 4 column 3: unknown field `seqlen`, expected one of seq_len, stride, pack, separator, remainder, pad_id, ignore_index, dtype, vocab_size, columns\n"),
        "{e}"
    );
}

#[test]
fn item_05_a_split_must_be_a_partition_column() {
    assert_eq!(
        problems_of(&format!(
            "{SOURCE}windows: {{seq_len: 4}}\nsplit: {{fractions: {{train: 0.9, val: 0.1}}}}\nsink: {{path: out, partition_by: [source]}}\n"
        )),
        ["`split` is given but `sink.partition_by` does not name `split`: the split would be computed and thrown away; add `split` to `sink.partition_by`"]
    );
    assert_eq!(
        with_windows("seq_len: 4", "split: {fractions: {train: 1}}\n"),
        ["`split` is given but `sink.partition_by` does not name `split`: the split would be computed and thrown away; add `split` to `sink.partition_by`"]
    );
    assert!(with_split("split: {fractions: {train: 0.9, val: 0.1}}\n").is_empty());
}

#[test]
fn item_06_hidden_partition_columns_are_refused() {
    assert_eq!(
        problems_of(
            "source: {path: data, tokens: tokens, carry: [_src, .lang, ok]}\nwindows: {seq_len: 4}\nsink: {path: out, partition_by: [_src, .lang, ok]}\n"
        ),
        [
            "`sink.partition_by` column `_src` starts with `_`: readers (pyarrow, Spark, seqwin) treat `_src=…` directories as hidden and would read no rows; rename the column",
            "`sink.partition_by` column `.lang` starts with `.`: readers (pyarrow, Spark, seqwin) treat `.lang=…` directories as hidden and would read no rows; rename the column",
        ]
    );
}

#[test]
fn item_13_sink_paths_that_cannot_work_are_refused() {
    assert_eq!(
        with_sink("{path: \"out\\0x\"}"),
        ["`sink.path` contains a NUL byte"]
    );
    assert_eq!(
        with_sink("{path: out/.}"),
        ["`sink.path` must end with the name of the dataset directory, got `out/.`"]
    );
    assert_eq!(
        with_sink("{path: /}"),
        ["`sink.path` must end with the name of the dataset directory, got `/`"]
    );
    assert_eq!(
        with_sink("{path: a/../out}"),
        ["`sink.path` must not contain `..` components, got `a/../out`; write the path without them"]
    );
    assert_eq!(
        with_sink("{path: out/..}"),
        ["`sink.path` must not contain `..` components, got `out/..`; write the path without them"]
    );
    let longest = "n".repeat(231);
    assert!(with_sink(&format!("{{path: {longest}}}")).is_empty());
    assert!(with_sink(&format!("{{path: ./x/{longest}/}}")).is_empty());
    assert_eq!(
        with_sink(&format!("{{path: {longest}n}}")),
        ["`sink.path`: the directory name is 232 bytes long; at most 231 fit (its staging directory `.NAME.seqwin-staging-PID` must stay within 255 bytes)"]
    );
}

#[cfg(feature = "cloud")]
#[test]
fn item_14_a_sink_inside_an_object_store_source_is_refused() {
    // Object store prefixes are not local paths.
    assert!(with_sink("{path: 's3://b/a/../x'}").is_empty());
    let yaml = |source: &str, sink: &str| {
        problems_of(&format!(
            "source: {{path: '{source}', tokens: tokens}}\nwindows: {{seq_len: 4}}\nsink: {{path: '{sink}'}}\n"
        ))
    };
    assert_eq!(
        yaml("s3://b/corpus", "s3://b/corpus/out"),
        ["`sink.path` s3://b/corpus/out is inside `source.path` s3://b/corpus: a rerun would read its own output as input; write the dataset elsewhere"]
    );
    assert_eq!(
        yaml("s3://b/corpus/", "s3://b/corpus"),
        ["`sink.path` s3://b/corpus is inside `source.path` s3://b/corpus: a rerun would read its own output as input; write the dataset elsewhere"]
    );
    assert!(yaml("s3://b/corpus", "s3://b/corpus-out").is_empty());
    assert!(yaml("s3://b/corpus", "gs://b/corpus/out").is_empty());
}

/// Without the `cloud` feature an object store path is still classified as
/// one (never taken for a local path) and refused, naming its key, before
/// the other problems: no fix of those makes the pipeline runnable.
#[cfg(not(feature = "cloud"))]
#[test]
fn object_store_paths_need_the_cloud_feature() {
    let refused = |yaml: &str| match Plan::try_new(config(yaml), Path::new("/p/p.yaml")) {
        Err(e @ Error::CloudDisabled { .. }) => (e.exit_code(), e.to_string()),
        other => panic!("expected CloudDisabled, got {other:?}"),
    };
    assert_eq!(
        refused("source: {path: 'S3://b/corpus/', tokens: tokens}\nwindows: {seq_len: 0}\nsink: {path: 'gs://b/out'}\n"),
        (2, "`source.path`: \"s3://b/corpus\" needs object-store support; this seqwin was built without the `cloud` feature (cargo install seqwin --features cloud)".to_string())
    );
    assert_eq!(
        refused(&format!("{SOURCE}windows: {{seq_len: 4}}\nsink: {{path: 'az://c/out'}}\n")),
        (2, "`sink.path`: \"az://c/out\" needs object-store support; this seqwin was built without the `cloud` feature (cargo install seqwin --features cloud)".to_string())
    );
}

#[test]
fn window_keys_and_defaults_for_the_python_api() {
    let defaults = serde_json::Value::Object(crate::config::WindowsConfig::defaults());
    assert_eq!(
        defaults,
        serde_json::json!({
            "seq_len": null, "stride": null, "pack": false, "separator": null,
            "remainder": "drop", "pad_id": 0, "ignore_index": -100, "dtype": "int32",
            "vocab_size": null, "columns": []
        })
    );
    let keys: Vec<&String> = match &defaults {
        serde_json::Value::Object(m) => m.keys().collect(),
        _ => unreachable!(),
    };
    assert_eq!(
        keys,
        [
            "columns",
            "dtype",
            "ignore_index",
            "pack",
            "pad_id",
            "remainder",
            "separator",
            "seq_len",
            "stride",
            "vocab_size"
        ]
    );
}

/// The problems of a pipeline with the input sections `inputs`.
fn with_inputs(inputs: &str) -> Vec<String> {
    problems_of(&format!(
        "{inputs}windows: {{seq_len: 4}}\nshuffle: {{}}\n{SINK}"
    ))
}

#[test]
fn source_and_sources_exclude_each_other() {
    assert_eq!(
        with_inputs(&format!(
            "{SOURCE}sources:\n  - {{name: a, path: a, tokens: t, repeat: 1}}\n"
        )),
        ["`source` and `sources` cannot both be given: list every corpus under `sources`"]
    );
    assert_eq!(
        with_inputs(""),
        ["one of `source` or `sources` is required"]
    );
    assert_eq!(
        with_inputs(&format!("{SOURCE}mix: {{seed: 1}}\n")),
        ["`mix` only applies to `sources`; remove it or list the corpus under `sources`"]
    );
}

#[test]
fn a_mix_keeps_names_amounts_and_settings() {
    let plan = Plan::try_new(
        config(
            "sources:\n  - {name: web, path: w, tokens: t, weight: 0.7}\n  - {name: code, path: c, tokens: t, weight: 0.3}\nmix: {total_tokens: 100, upsample: true, seed: 5}\nwindows: {seq_len: 4}\nshuffle: {}\nsink: {path: out}\n",
        ),
        Path::new("/p/p.yaml"),
    )
    .unwrap();
    let mix = plan.mix.unwrap();
    let names: Vec<&str> = mix.sources.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web", "code"]);
    assert_eq!(mix.sources[1].amount, Amount::Weight(0.3));
    assert_eq!(mix.sources[1].source.path, Location::Local("/p/c".into()));
    assert_eq!(plan.source.path, Location::Local("/p/w".into()));
    assert_eq!(
        (mix.total_tokens, mix.upsample, mix.seed),
        (Some(100), true, 5)
    );
}

#[test]
fn each_source_gives_one_amount_a_unique_name_and_the_same_columns() {
    assert_eq!(
        with_inputs(
            "sources:\n  - {name: a, path: a, tokens: t, carry: [x]}\n  - {name: a, path: '', tokens: t, repeat: 2, max_tokens: 5, carry: [y]}\n  - {name: '', path: c, tokens: t, repeat: -1, carry: [x]}\n  - {name: d, path: d, tokens: t, max_tokens: 0, carry: [x]}\n"
        ),
        [
            "`sources[0]` (a) must give exactly one of `weight`, `repeat`, `max_tokens`, got none",
            "`sources[1].path` must not be empty",
            "`sources[1].name` `a` is used by an earlier source",
            "`sources[1]` (a) must give exactly one of `weight`, `repeat`, `max_tokens`, got repeat, max_tokens",
            "`sources[1].carry` must list the columns of `sources[0].carry` ([x]): every source gives the same output columns, got [y]",
            "`sources[2].name` must not be empty",
            "`sources[2].repeat` must be positive, got -1",
            "`sources[3].max_tokens` must be at least 1, got 0",
        ]
    );
}

#[test]
fn weights_are_all_or_none_and_sum_to_one() {
    assert_eq!(
        with_inputs(
            "sources:\n  - {name: a, path: a, tokens: t, weight: 0.5}\n  - {name: b, path: b, tokens: t, repeat: 2}\n"
        ),
        ["`sources`: either every source gives `weight` or none does; `weight` in a, `repeat` or `max_tokens` in b"]
    );
    assert_eq!(
        with_inputs(
            "sources:\n  - {name: a, path: a, tokens: t, weight: 0.5}\n  - {name: b, path: b, tokens: t, weight: 0.25}\n"
        ),
        ["`sources` weights must sum to 1, got 0.75"]
    );
    assert_eq!(
        with_inputs(
            "sources:\n  - {name: a, path: a, tokens: t, repeat: 0.5}\nmix: {total_tokens: 0, upsample: true}\n"
        ),
        [
            "`mix.total_tokens` only applies to sources given by `weight`",
            "`mix.upsample` only applies to sources given by `weight`",
            "`mix.total_tokens` must be at least 1, got 0",
        ]
    );
}

#[test]
fn passes_follow_repeat_max_tokens_and_weights() {
    let mix = |sources: &str, mix: &str| {
        Plan::try_new(
            config(&format!(
                "sources:\n{sources}{mix}windows: {{seq_len: 4}}\nshuffle: {{}}\nsink: {{path: out}}\n"
            )),
            Path::new("/p/p.yaml"),
        )
        .unwrap()
        .mix
        .unwrap()
    };
    let fixed = mix(
        "  - {name: a, path: a, tokens: t, repeat: 2.5}\n  - {name: b, path: b, tokens: t, max_tokens: 50}\n",
        "",
    );
    assert_eq!(fixed.passes(&[10, 200]), Ok(vec![2.5, 0.25]));
    // Without a total, the largest one taking no source twice: min(300/0.75, 50/0.25) = 200.
    let weighted = "  - {name: a, path: a, tokens: t, weight: 0.75}\n  - {name: b, path: b, tokens: t, weight: 0.25}\n";
    assert_eq!(mix(weighted, "").passes(&[300, 50]), Ok(vec![0.5, 1.0]));
    assert_eq!(
        mix(weighted, "mix: {total_tokens: 400}\n").passes(&[300, 50]),
        Err(vec![
            "source `b` has 50 tokens, too few for weight 0.25 of 400 tokens without `mix.upsample: true` (2.000 passes)".to_string()
        ])
    );
    assert_eq!(
        mix(weighted, "mix: {total_tokens: 400, upsample: true}\n").passes(&[300, 50]),
        Ok(vec![1.0, 2.0])
    );
}

#[test]
fn the_sink_lies_outside_every_source_of_a_mix() {
    assert_eq!(
        problems_of(
            "sources:\n  - {name: a, path: 's3://x/a', tokens: t, repeat: 1}\n  - {name: b, path: 's3://x/b', tokens: t, repeat: 1}\nwindows: {seq_len: 4}\nshuffle: {}\nsink: {path: 's3://x/b/out'}\n"
        ),
        ["`sink.path` s3://x/b/out is inside `sources[1].path` s3://x/b: a rerun would read its own output as input; write the dataset elsewhere"]
    );
}

#[test]
fn an_unshuffled_mix_blends_and_refuses_tbptt() {
    let sources = "sources:\n  - {name: a, path: a, tokens: t, repeat: 1}\n  - {name: b, path: b, tokens: t, repeat: 2}\n";
    let plan = |rest: &str| {
        Plan::try_new(
            config(&format!("{sources}windows: {{seq_len: 4}}\n{rest}{SINK}")),
            Path::new("/p/p.yaml"),
        )
    };
    assert_eq!(plan("").unwrap().order, RowOrder::Blend);
    assert!(matches!(
        plan("shuffle: {seed: 3}\n").unwrap().order,
        RowOrder::Shuffle { seed: 3, .. }
    ));
    assert_eq!(
        problems_of(&format!(
            "{sources}windows: {{seq_len: 4}}\ntbptt: {{batch_size: 2}}\n{SINK}"
        )),
        ["`sources` cannot be combined with `tbptt`: its lanes cut one packed stream per partition, and a mix keeps one per source; mix with `shuffle:` or without an order (proportional interleave)"]
    );
}
