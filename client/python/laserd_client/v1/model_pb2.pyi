import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Device(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_UNSPECIFIED: _ClassVar[Device]
    DEVICE_CPU: _ClassVar[Device]
    DEVICE_CUDA: _ClassVar[Device]
DEVICE_UNSPECIFIED: Device
DEVICE_CPU: Device
DEVICE_CUDA: Device

class MatrixTypeInfo(_message.Message):
    __slots__ = ("matrix_type", "aliases", "rows", "cols", "max_rank", "layers", "source_tensor", "fused_block", "source_dtype")
    MATRIX_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    MAX_RANK_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TENSOR_FIELD_NUMBER: _ClassVar[int]
    FUSED_BLOCK_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DTYPE_FIELD_NUMBER: _ClassVar[int]
    matrix_type: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    rows: int
    cols: int
    max_rank: int
    layers: _containers.RepeatedScalarFieldContainer[int]
    source_tensor: str
    fused_block: str
    source_dtype: str
    def __init__(self, matrix_type: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., max_rank: _Optional[int] = ..., layers: _Optional[_Iterable[int]] = ..., source_tensor: _Optional[str] = ..., fused_block: _Optional[str] = ..., source_dtype: _Optional[str] = ...) -> None: ...

class MemoryInfo(_message.Message):
    __slots__ = ("weights_bytes", "cache_bytes", "cache_budget_bytes", "device_total_bytes", "device_free_bytes", "process_rss_bytes")
    WEIGHTS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PROCESS_RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    weights_bytes: int
    cache_bytes: int
    cache_budget_bytes: int
    device_total_bytes: int
    device_free_bytes: int
    process_rss_bytes: int
    def __init__(self, weights_bytes: _Optional[int] = ..., cache_bytes: _Optional[int] = ..., cache_budget_bytes: _Optional[int] = ..., device_total_bytes: _Optional[int] = ..., device_free_bytes: _Optional[int] = ..., process_rss_bytes: _Optional[int] = ...) -> None: ...

class TokenizerInfo(_message.Message):
    __slots__ = ("kind", "pre_tokenizer", "add_bos", "bos_token_id", "eos_token_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRE_TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    ADD_BOS_FIELD_NUMBER: _ClassVar[int]
    BOS_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    EOS_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    kind: str
    pre_tokenizer: str
    add_bos: bool
    bos_token_id: int
    eos_token_id: int
    def __init__(self, kind: _Optional[str] = ..., pre_tokenizer: _Optional[str] = ..., add_bos: _Optional[bool] = ..., bos_token_id: _Optional[int] = ..., eos_token_id: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "path", "sha256", "format", "architecture", "num_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "vocab_size", "context_length", "tied_embeddings", "parameter_count", "source_dtypes", "compute_dtype", "device", "device_name", "memory", "matrix_types", "tokenizer", "load_time", "devices")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    NUM_LAYERS_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    INTERMEDIATE_SIZE_FIELD_NUMBER: _ClassVar[int]
    NUM_ATTENTION_HEADS_FIELD_NUMBER: _ClassVar[int]
    NUM_KEY_VALUE_HEADS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    TIED_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DTYPES_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    MATRIX_TYPES_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    LOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    sha256: str
    format: str
    architecture: str
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    context_length: int
    tied_embeddings: bool
    parameter_count: int
    source_dtypes: _containers.RepeatedScalarFieldContainer[str]
    compute_dtype: str
    device: Device
    device_name: str
    memory: MemoryInfo
    matrix_types: _containers.RepeatedCompositeFieldContainer[MatrixTypeInfo]
    tokenizer: TokenizerInfo
    load_time: _timestamp_pb2.Timestamp
    devices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., sha256: _Optional[str] = ..., format: _Optional[str] = ..., architecture: _Optional[str] = ..., num_layers: _Optional[int] = ..., hidden_size: _Optional[int] = ..., intermediate_size: _Optional[int] = ..., num_attention_heads: _Optional[int] = ..., num_key_value_heads: _Optional[int] = ..., vocab_size: _Optional[int] = ..., context_length: _Optional[int] = ..., tied_embeddings: _Optional[bool] = ..., parameter_count: _Optional[int] = ..., source_dtypes: _Optional[_Iterable[str]] = ..., compute_dtype: _Optional[str] = ..., device: _Optional[_Union[Device, str]] = ..., device_name: _Optional[str] = ..., memory: _Optional[_Union[MemoryInfo, _Mapping]] = ..., matrix_types: _Optional[_Iterable[_Union[MatrixTypeInfo, _Mapping]]] = ..., tokenizer: _Optional[_Union[TokenizerInfo, _Mapping]] = ..., load_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., devices: _Optional[_Iterable[str]] = ...) -> None: ...

class DescribeModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSpectrumRequest(_message.Message):
    __slots__ = ("matrix_type", "layer")
    MATRIX_TYPE_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    matrix_type: str
    layer: int
    def __init__(self, matrix_type: _Optional[str] = ..., layer: _Optional[int] = ...) -> None: ...

class MarchenkoPastur(_message.Message):
    __slots__ = ("sigma", "beta", "threshold", "suggested_rank", "suggested_rho", "relative_error")
    SIGMA_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_RANK_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_RHO_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    sigma: float
    beta: float
    threshold: float
    suggested_rank: int
    suggested_rho: float
    relative_error: float
    def __init__(self, sigma: _Optional[float] = ..., beta: _Optional[float] = ..., threshold: _Optional[float] = ..., suggested_rank: _Optional[int] = ..., suggested_rho: _Optional[float] = ..., relative_error: _Optional[float] = ...) -> None: ...

class Spectrum(_message.Message):
    __slots__ = ("matrix_type", "layer", "rows", "cols", "max_rank", "singular_values", "frobenius_norm", "marchenko_pastur")
    MATRIX_TYPE_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    MAX_RANK_FIELD_NUMBER: _ClassVar[int]
    SINGULAR_VALUES_FIELD_NUMBER: _ClassVar[int]
    FROBENIUS_NORM_FIELD_NUMBER: _ClassVar[int]
    MARCHENKO_PASTUR_FIELD_NUMBER: _ClassVar[int]
    matrix_type: str
    layer: int
    rows: int
    cols: int
    max_rank: int
    singular_values: _containers.RepeatedScalarFieldContainer[float]
    frobenius_norm: float
    marchenko_pastur: MarchenkoPastur
    def __init__(self, matrix_type: _Optional[str] = ..., layer: _Optional[int] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., max_rank: _Optional[int] = ..., singular_values: _Optional[_Iterable[float]] = ..., frobenius_norm: _Optional[float] = ..., marchenko_pastur: _Optional[_Union[MarchenkoPastur, _Mapping]] = ...) -> None: ...
