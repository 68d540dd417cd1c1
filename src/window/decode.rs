//! Token columns in: nulls, negatives, `vocab_size` and the range of the
//! output type checked, values converted to the output element type (shared
//! with the input buffer when the types already agree).

use arrow_array::types::{Int32Type, Int64Type, UInt16Type, UInt32Type};
use arrow_array::ArrowPrimitiveType;
use arrow_array::{Array, ArrayRef};
use arrow_buffer::ArrowNativeType;
use arrow_buffer::ScalarBuffer;
use arrow_schema::DataType;

use super::TokenDtype;

/// A token element type of the output (`windows.dtype`).
pub trait Token: ArrowNativeType + Copy + Send + Sync + 'static {
    /// The Arrow type of the output arrays.
    type Arrow: ArrowPrimitiveType<Native = Self>;
    /// Converts a value already checked to fit.
    fn from_i64(v: i64) -> Self;
}

macro_rules! token {
    ($t:ty, $arrow:ty) => {
        impl Token for $t {
            type Arrow = $arrow;
            #[inline]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    };
}
token!(i32, Int32Type);
token!(i64, Int64Type);
token!(u16, UInt16Type);
token!(u32, UInt32Type);

/// Errors of [`decode_tokens`], with the row (document) they concern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// The column is not an integer list or integer column.
    NotInteger(String),
    /// A null document.
    NullDocument {
        /// The document's row.
        row: usize,
    },
    /// A null token.
    NullToken {
        /// The row holding it.
        row: usize,
    },
    /// A token below zero.
    Negative {
        /// The row holding it.
        row: usize,
        /// The token.
        value: i128,
    },
    /// A token `>= vocab_size`.
    OutOfVocab {
        /// The row holding it.
        row: usize,
        /// The token.
        value: i128,
        /// `windows.vocab_size`.
        vocab_size: u64,
    },
    /// A token that does not fit the output dtype.
    TooLarge {
        /// The row holding it.
        row: usize,
        /// The token.
        value: i128,
        /// `windows.dtype`.
        dtype: &'static str,
    },
}

impl TokenError {
    /// The row (document, or token for flat columns) the error concerns; 0 for type errors.
    pub fn row(&self) -> usize {
        match *self {
            TokenError::NotInteger(_) => 0,
            TokenError::NullDocument { row }
            | TokenError::NullToken { row }
            | TokenError::Negative { row, .. }
            | TokenError::OutOfVocab { row, .. }
            | TokenError::TooLarge { row, .. } => row,
        }
    }

    /// What is wrong, without the row.
    pub fn describe(&self) -> String {
        match self {
            TokenError::NotInteger(t) => {
                format!("expected a list of integers or an integer column, found {t}")
            }
            TokenError::NullDocument { .. } => "the document is null".into(),
            TokenError::NullToken { .. } => "a token is null".into(),
            TokenError::Negative { value, .. } => {
                format!("token {value} is negative; token ids must be >= 0")
            }
            TokenError::OutOfVocab {
                value, vocab_size, ..
            } => {
                format!("token {value} is not below windows.vocab_size {vocab_size}")
            }
            TokenError::TooLarge { value, dtype, .. } => {
                format!("token {value} does not fit windows.dtype {dtype}; choose a wider dtype")
            }
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::NotInteger(_) => write!(f, "{}", self.describe()),
            _ => write!(f, "row {}: {}", self.row(), self.describe()),
        }
    }
}

/// Tokens of a batch of documents, converted to the output type.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedTokens<T: ArrowNativeType> {
    /// All tokens, documents back to back (shares the input buffer when the
    /// input already has the output type).
    pub values: ScalarBuffer<T>,
    /// Document `i` is `values[offsets[i]..offsets[i + 1]]`. Empty for a
    /// flat integer column (row `i` is token `i`).
    pub offsets: Vec<usize>,
    /// True when the column was a flat integer column (one token per row).
    pub flat: bool,
}

/// Whether a column type is accepted as a token column.
pub fn is_token_column(dt: &DataType) -> bool {
    match dt {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            f.data_type().is_integer()
        }
        other => other.is_integer(),
    }
}

/// Decodes a token column (list of integers, one document per row, or a plain
/// integer column, one token per row) into `T`, checking nulls, negatives,
/// `vocab_size` and the range of `T`.
///
/// # Errors
/// The first offending row, as a [`TokenError`].
pub fn decode_tokens<T: Token>(
    column: &dyn Array,
    dtype: TokenDtype,
    vocab_size: Option<u64>,
) -> std::result::Result<DecodedTokens<T>, TokenError> {
    use arrow_array::cast::AsArray;
    let (values, offsets, flat): (ArrayRef, Vec<usize>, bool) = match column.data_type() {
        DataType::List(_) => {
            let (values, offsets) = list_parts(column.as_list::<i32>())?;
            (values, offsets, false)
        }
        DataType::LargeList(_) => {
            let (values, offsets) = list_parts(column.as_list::<i64>())?;
            (values, offsets, false)
        }
        DataType::FixedSizeList(_, size) => {
            let l = column.as_fixed_size_list();
            check_null_docs(l)?;
            let size = *size as usize;
            let base = l.offset() * size;
            let offs = (0..=l.len()).map(|i| i * size).collect();
            (l.values().slice(base, l.len() * size), offs, false)
        }
        // No offsets: a row is a token (an identity list of 1M rows would
        // take twice the tokens' own bytes).
        dt if dt.is_integer() => (arrow_array::make_array(column.to_data()), Vec::new(), true),
        other => return Err(TokenError::NotInteger(other.to_string())),
    };
    let values = values.as_ref();
    let row_of = |i: usize| match flat {
        true => i,
        false => offsets.partition_point(|&o| o <= i) - 1,
    };
    if values.null_count() > 0 {
        let nulls = values.logical_nulls().expect("null count > 0");
        let i = (0..values.len())
            .find(|&i| nulls.is_null(i))
            .expect("a null exists");
        return Err(TokenError::NullToken { row: row_of(i) });
    }
    let max = dtype.max() as i128;
    let limit = vocab_size.map(|v| v as i128);
    let out = convert_values::<T>(
        values,
        |i, v| {
            let row = row_of(i);
            if v < 0 {
                TokenError::Negative { row, value: v }
            } else if let Some(vocab_size) = vocab_size.filter(|&vs| v >= vs as i128) {
                TokenError::OutOfVocab {
                    row,
                    value: v,
                    vocab_size,
                }
            } else {
                TokenError::TooLarge {
                    row,
                    value: v,
                    dtype: dtype.name(),
                }
            }
        },
        limit.map_or(max, |l| (l - 1).min(max)),
    )?;
    Ok(DecodedTokens {
        values: out,
        offsets,
        flat,
    })
}

/// The values a (possibly sliced) list array covers, and its offsets rebased to 0.
fn list_parts<O: arrow_array::OffsetSizeTrait>(
    l: &arrow_array::GenericListArray<O>,
) -> std::result::Result<(ArrayRef, Vec<usize>), TokenError> {
    check_null_docs(l)?;
    let o = l.value_offsets();
    let base = o[0].as_usize();
    let end = o[o.len() - 1].as_usize();
    let offsets = o.iter().map(|x| x.as_usize() - base).collect();
    Ok((l.values().slice(base, end - base), offsets))
}

fn check_null_docs(a: &dyn Array) -> std::result::Result<(), TokenError> {
    if a.null_count() > 0 {
        let row = (0..a.len()).find(|&i| a.is_null(i)).expect("a null exists");
        return Err(TokenError::NullDocument { row });
    }
    Ok(())
}

/// The largest `f(v)` of a slice (`None` when empty). Compiled a second time
/// for AVX2 and picked at run time: the range check of every input token must
/// not cost more than copying it.
fn max_by_key<N: Copy, U: Copy + Ord>(a: &[N], f: impl Fn(N) -> U) -> Option<U> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { max_by_key_avx2(a, f) };
    }
    a.iter().map(|&v| f(v)).max()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_by_key_avx2<N: Copy, U: Copy + Ord>(a: &[N], f: impl Fn(N) -> U) -> Option<U> {
    a.iter().map(|&v| f(v)).max()
}

fn convert_values<T: Token>(
    values: &dyn Array,
    error: impl Fn(usize, i128) -> TokenError,
    max: i128,
) -> std::result::Result<ScalarBuffer<T>, TokenError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    use std::any::TypeId;
    macro_rules! conv {
        ($arrow:ty, $native:ty, $unsigned:ty) => {{
            let a = values.as_primitive::<$arrow>().values();
            // Range check in the native type (vectorises), then convert.
            // Negative values reinterpret as huge unsigned ones, so one
            // unsigned comparison checks both bounds (`max` is never negative).
            let limit = max.min(<$native>::MAX as i128) as $unsigned;
            if max_by_key(a, |v| v as $unsigned).is_none_or(|m| m <= limit) {
                if TypeId::of::<$native>() == TypeId::of::<T>() {
                    // Same type: share the decoded buffer, no copy.
                    Ok(ScalarBuffer::<T>::new(a.inner().clone(), 0, a.len()))
                } else {
                    Ok(a.iter()
                        .map(|&v| T::from_i64(v as i64))
                        .collect::<Vec<T>>()
                        .into())
                }
            } else {
                let i = a
                    .iter()
                    .position(|&v| (v as i128) < 0 || (v as i128) > max)
                    .expect("an offender exists");
                Err(error(i, a[i] as i128))
            }
        }};
    }
    match values.data_type() {
        DataType::Int8 => conv!(Int8Type, i8, u8),
        DataType::Int16 => conv!(Int16Type, i16, u16),
        DataType::Int32 => conv!(Int32Type, i32, u32),
        DataType::Int64 => conv!(Int64Type, i64, u64),
        DataType::UInt8 => conv!(UInt8Type, u8, u8),
        DataType::UInt16 => conv!(UInt16Type, u16, u16),
        DataType::UInt32 => conv!(UInt32Type, u32, u32),
        DataType::UInt64 => conv!(UInt64Type, u64, u64),
        other => Err(TokenError::NotInteger(other.to_string())),
    }
}
