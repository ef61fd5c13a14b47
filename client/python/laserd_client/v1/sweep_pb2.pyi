import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_KIND_UNSPECIFIED: _ClassVar[TaskKind]
    TASK_KIND_COMPLETION: _ClassVar[TaskKind]
    TASK_KIND_CHOICE: _ClassVar[TaskKind]
    TASK_KIND_GENERATION: _ClassVar[TaskKind]

class MatchRule(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATCH_RULE_UNSPECIFIED: _ClassVar[MatchRule]
    MATCH_RULE_GREEDY: _ClassVar[MatchRule]
    MATCH_RULE_TOP1_DECODED: _ClassVar[MatchRule]
    MATCH_RULE_EXACT: _ClassVar[MatchRule]
    MATCH_RULE_PREFIX: _ClassVar[MatchRule]
    MATCH_RULE_CONTAINS: _ClassVar[MatchRule]

class SvdMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SVD_METHOD_UNSPECIFIED: _ClassVar[SvdMethod]
    SVD_METHOD_AUTO: _ClassVar[SvdMethod]
    SVD_METHOD_EXACT: _ClassVar[SvdMethod]
    SVD_METHOD_RANDOMIZED: _ClassVar[SvdMethod]
    SVD_METHOD_PAPER: _ClassVar[SvdMethod]

class SplitMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_MODE_UNSPECIFIED: _ClassVar[SplitMode]
    SPLIT_MODE_FIRST: _ClassVar[SplitMode]
    SPLIT_MODE_SHUFFLE: _ClassVar[SplitMode]

class CompositionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPOSITION_MODE_UNSPECIFIED: _ClassVar[CompositionMode]
    COMPOSITION_MODE_NONE: _ClassVar[CompositionMode]
    COMPOSITION_MODE_GREEDY: _ClassVar[CompositionMode]

class InterventionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERVENTION_KIND_UNSPECIFIED: _ClassVar[InterventionKind]
    INTERVENTION_KIND_RANK_REDUCTION: _ClassVar[InterventionKind]
    INTERVENTION_KIND_ZERO: _ClassVar[InterventionKind]
    INTERVENTION_KIND_PRUNE: _ClassVar[InterventionKind]

class RankSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RANK_SOURCE_UNSPECIFIED: _ClassVar[RankSource]
    RANK_SOURCE_RHO: _ClassVar[RankSource]
    RANK_SOURCE_RATE: _ClassVar[RankSource]
    RANK_SOURCE_SUGGESTED: _ClassVar[RankSource]

class ResultKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESULT_KIND_UNSPECIFIED: _ClassVar[ResultKind]
    RESULT_KIND_SINGLE: _ClassVar[ResultKind]
    RESULT_KIND_COMPOSITION: _ClassVar[ResultKind]

class ExampleSplit(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXAMPLE_SPLIT_UNSPECIFIED: _ClassVar[ExampleSplit]
    EXAMPLE_SPLIT_VALIDATION: _ClassVar[ExampleSplit]
    EXAMPLE_SPLIT_TEST: _ClassVar[ExampleSplit]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class JobPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_PHASE_UNSPECIFIED: _ClassVar[JobPhase]
    JOB_PHASE_PREPARING: _ClassVar[JobPhase]
    JOB_PHASE_BASELINE: _ClassVar[JobPhase]
    JOB_PHASE_SWEEPING: _ClassVar[JobPhase]
    JOB_PHASE_COMPOSING: _ClassVar[JobPhase]
TASK_KIND_UNSPECIFIED: TaskKind
TASK_KIND_COMPLETION: TaskKind
TASK_KIND_CHOICE: TaskKind
TASK_KIND_GENERATION: TaskKind
MATCH_RULE_UNSPECIFIED: MatchRule
MATCH_RULE_GREEDY: MatchRule
MATCH_RULE_TOP1_DECODED: MatchRule
MATCH_RULE_EXACT: MatchRule
MATCH_RULE_PREFIX: MatchRule
MATCH_RULE_CONTAINS: MatchRule
SVD_METHOD_UNSPECIFIED: SvdMethod
SVD_METHOD_AUTO: SvdMethod
SVD_METHOD_EXACT: SvdMethod
SVD_METHOD_RANDOMIZED: SvdMethod
SVD_METHOD_PAPER: SvdMethod
SPLIT_MODE_UNSPECIFIED: SplitMode
SPLIT_MODE_FIRST: SplitMode
SPLIT_MODE_SHUFFLE: SplitMode
COMPOSITION_MODE_UNSPECIFIED: CompositionMode
COMPOSITION_MODE_NONE: CompositionMode
COMPOSITION_MODE_GREEDY: CompositionMode
INTERVENTION_KIND_UNSPECIFIED: InterventionKind
INTERVENTION_KIND_RANK_REDUCTION: InterventionKind
INTERVENTION_KIND_ZERO: InterventionKind
INTERVENTION_KIND_PRUNE: InterventionKind
RANK_SOURCE_UNSPECIFIED: RankSource
RANK_SOURCE_RHO: RankSource
RANK_SOURCE_RATE: RankSource
RANK_SOURCE_SUGGESTED: RankSource
RESULT_KIND_UNSPECIFIED: ResultKind
RESULT_KIND_SINGLE: ResultKind
RESULT_KIND_COMPOSITION: ResultKind
EXAMPLE_SPLIT_UNSPECIFIED: ExampleSplit
EXAMPLE_SPLIT_VALIDATION: ExampleSplit
EXAMPLE_SPLIT_TEST: ExampleSplit
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_PHASE_UNSPECIFIED: JobPhase
JOB_PHASE_PREPARING: JobPhase
JOB_PHASE_BASELINE: JobPhase
JOB_PHASE_SWEEPING: JobPhase
JOB_PHASE_COMPOSING: JobPhase

class DatasetRef(_message.Message):
    __slots__ = ("dataset_id", "path", "allow_changed_file")
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ALLOW_CHANGED_FILE_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    path: str
    allow_changed_file: bool
    def __init__(self, dataset_id: _Optional[str] = ..., path: _Optional[str] = ..., allow_changed_file: _Optional[bool] = ...) -> None: ...

class GenerationOptions(_message.Message):
    __slots__ = ("max_new_tokens", "stop_strings", "match_prompt")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_STRINGS_FIELD_NUMBER: _ClassVar[int]
    MATCH_PROMPT_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    stop_strings: _containers.RepeatedScalarFieldContainer[str]
    match_prompt: bool
    def __init__(self, max_new_tokens: _Optional[int] = ..., stop_strings: _Optional[_Iterable[str]] = ..., match_prompt: _Optional[bool] = ...) -> None: ...

class LayerRange(_message.Message):
    __slots__ = ("start", "stop", "step")
    START_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    start: int
    stop: int
    step: int
    def __init__(self, start: _Optional[int] = ..., stop: _Optional[int] = ..., step: _Optional[int] = ...) -> None: ...

class LayerSelection(_message.Message):
    __slots__ = ("indices", "ranges")
    INDICES_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    indices: _containers.RepeatedScalarFieldContainer[int]
    ranges: _containers.RepeatedCompositeFieldContainer[LayerRange]
    def __init__(self, indices: _Optional[_Iterable[int]] = ..., ranges: _Optional[_Iterable[_Union[LayerRange, _Mapping]]] = ...) -> None: ...

class RhoList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class RateList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class SvdOptions(_message.Message):
    __slots__ = ("method", "oversampling", "power_iterations", "seed")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLING_FIELD_NUMBER: _ClassVar[int]
    POWER_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    method: SvdMethod
    oversampling: int
    power_iterations: int
    seed: int
    def __init__(self, method: _Optional[_Union[SvdMethod, str]] = ..., oversampling: _Optional[int] = ..., power_iterations: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class SplitOptions(_message.Message):
    __slots__ = ("mode", "validation_fraction", "seed")
    MODE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FRACTION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    mode: SplitMode
    validation_fraction: float
    seed: int
    def __init__(self, mode: _Optional[_Union[SplitMode, str]] = ..., validation_fraction: _Optional[float] = ..., seed: _Optional[int] = ...) -> None: ...

class BatchOptions(_message.Message):
    __slots__ = ("batch_size", "max_batch_tokens")
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    max_batch_tokens: int
    def __init__(self, batch_size: _Optional[int] = ..., max_batch_tokens: _Optional[int] = ...) -> None: ...

class CompositionOptions(_message.Message):
    __slots__ = ("mode", "max_interventions")
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_INTERVENTIONS_FIELD_NUMBER: _ClassVar[int]
    mode: CompositionMode
    max_interventions: int
    def __init__(self, mode: _Optional[_Union[CompositionMode, str]] = ..., max_interventions: _Optional[int] = ...) -> None: ...

class Shard(_message.Message):
    __slots__ = ("index", "count")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    index: int
    count: int
    def __init__(self, index: _Optional[int] = ..., count: _Optional[int] = ...) -> None: ...

class SweepSpec(_message.Message):
    __slots__ = ("dataset", "task", "matrix_types", "layers", "rho", "rate", "add_suggested_rank", "svd", "split", "top_k", "batch", "composition", "shard", "priority", "labels", "model", "experts", "match", "generation", "keep_example_outputs", "round_to_source_dtype", "intervention_kinds")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATASET_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    MATRIX_TYPES_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    ADD_SUGGESTED_RANK_FIELD_NUMBER: _ClassVar[int]
    SVD_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    COMPOSITION_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EXPERTS_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    KEEP_EXAMPLE_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ROUND_TO_SOURCE_DTYPE_FIELD_NUMBER: _ClassVar[int]
    INTERVENTION_KINDS_FIELD_NUMBER: _ClassVar[int]
    dataset: DatasetRef
    task: TaskKind
    matrix_types: _containers.RepeatedScalarFieldContainer[str]
    layers: LayerSelection
    rho: RhoList
    rate: RateList
    add_suggested_rank: bool
    svd: SvdOptions
    split: SplitOptions
    top_k: _containers.RepeatedScalarFieldContainer[int]
    batch: BatchOptions
    composition: CompositionOptions
    shard: Shard
    priority: int
    labels: _containers.ScalarMap[str, str]
    model: str
    experts: _containers.RepeatedScalarFieldContainer[int]
    match: MatchRule
    generation: GenerationOptions
    keep_example_outputs: bool
    round_to_source_dtype: bool
    intervention_kinds: _containers.RepeatedScalarFieldContainer[InterventionKind]
    def __init__(self, dataset: _Optional[_Union[DatasetRef, _Mapping]] = ..., task: _Optional[_Union[TaskKind, str]] = ..., matrix_types: _Optional[_Iterable[str]] = ..., layers: _Optional[_Union[LayerSelection, _Mapping]] = ..., rho: _Optional[_Union[RhoList, _Mapping]] = ..., rate: _Optional[_Union[RateList, _Mapping]] = ..., add_suggested_rank: _Optional[bool] = ..., svd: _Optional[_Union[SvdOptions, _Mapping]] = ..., split: _Optional[_Union[SplitOptions, _Mapping]] = ..., top_k: _Optional[_Iterable[int]] = ..., batch: _Optional[_Union[BatchOptions, _Mapping]] = ..., composition: _Optional[_Union[CompositionOptions, _Mapping]] = ..., shard: _Optional[_Union[Shard, _Mapping]] = ..., priority: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., model: _Optional[str] = ..., experts: _Optional[_Iterable[int]] = ..., match: _Optional[_Union[MatchRule, str]] = ..., generation: _Optional[_Union[GenerationOptions, _Mapping]] = ..., keep_example_outputs: _Optional[bool] = ..., round_to_source_dtype: _Optional[bool] = ..., intervention_kinds: _Optional[_Iterable[_Union[InterventionKind, str]]] = ...) -> None: ...

class Intervention(_message.Message):
    __slots__ = ("matrix_type", "layer", "rho", "rate", "rank_source", "rank", "max_rank", "rows", "cols", "relative_error", "svd_method", "expert", "kind", "zeroed_entries")
    MATRIX_TYPE_FIELD_NUMBER: _ClassVar[int]
    LAYER_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    RANK_SOURCE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    MAX_RANK_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_ERROR_FIELD_NUMBER: _ClassVar[int]
    SVD_METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPERT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ZEROED_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    matrix_type: str
    layer: int
    rho: float
    rate: float
    rank_source: RankSource
    rank: int
    max_rank: int
    rows: int
    cols: int
    relative_error: float
    svd_method: SvdMethod
    expert: int
    kind: InterventionKind
    zeroed_entries: int
    def __init__(self, matrix_type: _Optional[str] = ..., layer: _Optional[int] = ..., rho: _Optional[float] = ..., rate: _Optional[float] = ..., rank_source: _Optional[_Union[RankSource, str]] = ..., rank: _Optional[int] = ..., max_rank: _Optional[int] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., relative_error: _Optional[float] = ..., svd_method: _Optional[_Union[SvdMethod, str]] = ..., expert: _Optional[int] = ..., kind: _Optional[_Union[InterventionKind, str]] = ..., zeroed_entries: _Optional[int] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("examples", "correct", "accuracy", "log_loss", "top_k_accuracy", "f1", "precision", "recall", "generated_tokens")
    class TopKAccuracyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: float
        def __init__(self, key: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LOG_LOSS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    examples: int
    correct: int
    accuracy: float
    log_loss: float
    top_k_accuracy: _containers.ScalarMap[int, float]
    f1: float
    precision: float
    recall: float
    generated_tokens: float
    def __init__(self, examples: _Optional[int] = ..., correct: _Optional[int] = ..., accuracy: _Optional[float] = ..., log_loss: _Optional[float] = ..., top_k_accuracy: _Optional[_Mapping[int, float]] = ..., f1: _Optional[float] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., generated_tokens: _Optional[float] = ...) -> None: ...

class MetricDeltas(_message.Message):
    __slots__ = ("accuracy", "log_loss", "top_k_accuracy")
    class TopKAccuracyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: float
        def __init__(self, key: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LOG_LOSS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    accuracy: float
    log_loss: float
    top_k_accuracy: _containers.ScalarMap[int, float]
    def __init__(self, accuracy: _Optional[float] = ..., log_loss: _Optional[float] = ..., top_k_accuracy: _Optional[_Mapping[int, float]] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("validation", "test")
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    validation: Metrics
    test: Metrics
    def __init__(self, validation: _Optional[_Union[Metrics, _Mapping]] = ..., test: _Optional[_Union[Metrics, _Mapping]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("job_id", "index", "plan_index", "kind", "intervention", "stacked_on", "metrics", "validation_delta", "test_delta", "kept", "shard_index", "svd_duration", "eval_duration", "create_time", "significance")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PLAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INTERVENTION_FIELD_NUMBER: _ClassVar[int]
    STACKED_ON_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_DELTA_FIELD_NUMBER: _ClassVar[int]
    TEST_DELTA_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    SHARD_INDEX_FIELD_NUMBER: _ClassVar[int]
    SVD_DURATION_FIELD_NUMBER: _ClassVar[int]
    EVAL_DURATION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    index: int
    plan_index: int
    kind: ResultKind
    intervention: Intervention
    stacked_on: _containers.RepeatedCompositeFieldContainer[Intervention]
    metrics: Evaluation
    validation_delta: MetricDeltas
    test_delta: MetricDeltas
    kept: bool
    shard_index: int
    svd_duration: _duration_pb2.Duration
    eval_duration: _duration_pb2.Duration
    create_time: _timestamp_pb2.Timestamp
    significance: Significance
    def __init__(self, job_id: _Optional[str] = ..., index: _Optional[int] = ..., plan_index: _Optional[int] = ..., kind: _Optional[_Union[ResultKind, str]] = ..., intervention: _Optional[_Union[Intervention, _Mapping]] = ..., stacked_on: _Optional[_Iterable[_Union[Intervention, _Mapping]]] = ..., metrics: _Optional[_Union[Evaluation, _Mapping]] = ..., validation_delta: _Optional[_Union[MetricDeltas, _Mapping]] = ..., test_delta: _Optional[_Union[MetricDeltas, _Mapping]] = ..., kept: _Optional[bool] = ..., shard_index: _Optional[int] = ..., svd_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., eval_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., significance: _Optional[_Union[Significance, _Mapping]] = ...) -> None: ...

class ExampleOutcome(_message.Message):
    __slots__ = ("index", "split", "correct", "answer_logprob", "answer_tokens", "chosen", "generated_text")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    ANSWER_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    GENERATED_TEXT_FIELD_NUMBER: _ClassVar[int]
    index: int
    split: ExampleSplit
    correct: bool
    answer_logprob: float
    answer_tokens: int
    chosen: int
    generated_text: str
    def __init__(self, index: _Optional[int] = ..., split: _Optional[_Union[ExampleSplit, str]] = ..., correct: _Optional[bool] = ..., answer_logprob: _Optional[float] = ..., answer_tokens: _Optional[int] = ..., chosen: _Optional[int] = ..., generated_text: _Optional[str] = ...) -> None: ...

class ExampleOutputs(_message.Message):
    __slots__ = ("job_id", "result_index", "plan_index", "examples")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_INDEX_FIELD_NUMBER: _ClassVar[int]
    PLAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    result_index: int
    plan_index: int
    examples: _containers.RepeatedCompositeFieldContainer[ExampleOutcome]
    def __init__(self, job_id: _Optional[str] = ..., result_index: _Optional[int] = ..., plan_index: _Optional[int] = ..., examples: _Optional[_Iterable[_Union[ExampleOutcome, _Mapping]]] = ...) -> None: ...

class SplitSignificance(_message.Message):
    __slots__ = ("examples", "improved", "worsened", "p_value", "significant", "accuracy_delta", "accuracy_ci_low", "accuracy_ci_high", "log_loss_delta", "log_loss_ci_low", "log_loss_ci_high")
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    IMPROVED_FIELD_NUMBER: _ClassVar[int]
    WORSENED_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_DELTA_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    LOG_LOSS_DELTA_FIELD_NUMBER: _ClassVar[int]
    LOG_LOSS_CI_LOW_FIELD_NUMBER: _ClassVar[int]
    LOG_LOSS_CI_HIGH_FIELD_NUMBER: _ClassVar[int]
    examples: int
    improved: int
    worsened: int
    p_value: float
    significant: bool
    accuracy_delta: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    log_loss_delta: float
    log_loss_ci_low: float
    log_loss_ci_high: float
    def __init__(self, examples: _Optional[int] = ..., improved: _Optional[int] = ..., worsened: _Optional[int] = ..., p_value: _Optional[float] = ..., significant: _Optional[bool] = ..., accuracy_delta: _Optional[float] = ..., accuracy_ci_low: _Optional[float] = ..., accuracy_ci_high: _Optional[float] = ..., log_loss_delta: _Optional[float] = ..., log_loss_ci_low: _Optional[float] = ..., log_loss_ci_high: _Optional[float] = ...) -> None: ...

class Significance(_message.Message):
    __slots__ = ("result_index", "alpha", "confidence", "bootstrap_resamples", "bootstrap_seed", "validation", "test")
    RESULT_INDEX_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_RESAMPLES_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_SEED_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    result_index: int
    alpha: float
    confidence: float
    bootstrap_resamples: int
    bootstrap_seed: int
    validation: SplitSignificance
    test: SplitSignificance
    def __init__(self, result_index: _Optional[int] = ..., alpha: _Optional[float] = ..., confidence: _Optional[float] = ..., bootstrap_resamples: _Optional[int] = ..., bootstrap_seed: _Optional[int] = ..., validation: _Optional[_Union[SplitSignificance, _Mapping]] = ..., test: _Optional[_Union[SplitSignificance, _Mapping]] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("phase", "interventions_total", "interventions_done", "fraction", "elapsed", "eta", "interventions_per_second", "best")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    INTERVENTIONS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    INTERVENTIONS_DONE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    INTERVENTIONS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BEST_FIELD_NUMBER: _ClassVar[int]
    phase: JobPhase
    interventions_total: int
    interventions_done: int
    fraction: float
    elapsed: _duration_pb2.Duration
    eta: _duration_pb2.Duration
    interventions_per_second: float
    best: Result
    def __init__(self, phase: _Optional[_Union[JobPhase, str]] = ..., interventions_total: _Optional[int] = ..., interventions_done: _Optional[int] = ..., fraction: _Optional[float] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., eta: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., interventions_per_second: _Optional[float] = ..., best: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "request_id", "spec", "state", "cancel_requested", "progress", "baseline", "validation_examples", "test_examples", "result_count", "best_composition", "error", "create_time", "start_time", "end_time", "update_time", "dataset_sha256", "run_dataset_sha256")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    TEST_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    RESULT_COUNT_FIELD_NUMBER: _ClassVar[int]
    BEST_COMPOSITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    RUN_DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    spec: SweepSpec
    state: JobState
    cancel_requested: bool
    progress: Progress
    baseline: Evaluation
    validation_examples: int
    test_examples: int
    result_count: int
    best_composition: Result
    error: JobError
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    dataset_sha256: str
    run_dataset_sha256: str
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., spec: _Optional[_Union[SweepSpec, _Mapping]] = ..., state: _Optional[_Union[JobState, str]] = ..., cancel_requested: _Optional[bool] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., baseline: _Optional[_Union[Evaluation, _Mapping]] = ..., validation_examples: _Optional[int] = ..., test_examples: _Optional[int] = ..., result_count: _Optional[int] = ..., best_composition: _Optional[_Union[Result, _Mapping]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dataset_sha256: _Optional[str] = ..., run_dataset_sha256: _Optional[str] = ...) -> None: ...

class CreateSweepRequest(_message.Message):
    __slots__ = ("spec", "request_id", "validate_only")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    spec: SweepSpec
    request_id: str
    validate_only: bool
    def __init__(self, spec: _Optional[_Union[SweepSpec, _Mapping]] = ..., request_id: _Optional[str] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("states", "labels", "page_size", "page_token")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[JobState]
    labels: _containers.ScalarMap[str, str]
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[JobState, str]]] = ..., labels: _Optional[_Mapping[str, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token", "total_size")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    total_size: int
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("job_id", "force")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    force: bool
    def __init__(self, job_id: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "from_result_index")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_RESULT_INDEX_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    from_result_index: int
    def __init__(self, job_id: _Optional[str] = ..., from_result_index: _Optional[int] = ...) -> None: ...

class JobStateChange(_message.Message):
    __slots__ = ("previous", "current", "error")
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    previous: JobState
    current: JobState
    error: JobError
    def __init__(self, previous: _Optional[_Union[JobState, str]] = ..., current: _Optional[_Union[JobState, str]] = ..., error: _Optional[_Union[JobError, _Mapping]] = ...) -> None: ...

class WatchJobEvent(_message.Message):
    __slots__ = ("time", "job", "state_change", "progress", "result", "baseline")
    TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    job: Job
    state_change: JobStateChange
    progress: Progress
    result: Result
    baseline: Evaluation
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., state_change: _Optional[_Union[JobStateChange, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., result: _Optional[_Union[Result, _Mapping]] = ..., baseline: _Optional[_Union[Evaluation, _Mapping]] = ...) -> None: ...

class ListResultsRequest(_message.Message):
    __slots__ = ("job_id", "page_size", "page_token", "order_by", "matrix_types", "layers", "kind")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    MATRIX_TYPES_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    page_size: int
    page_token: str
    order_by: str
    matrix_types: _containers.RepeatedScalarFieldContainer[str]
    layers: _containers.RepeatedScalarFieldContainer[int]
    kind: ResultKind
    def __init__(self, job_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., order_by: _Optional[str] = ..., matrix_types: _Optional[_Iterable[str]] = ..., layers: _Optional[_Iterable[int]] = ..., kind: _Optional[_Union[ResultKind, str]] = ...) -> None: ...

class ListExampleOutputsRequest(_message.Message):
    __slots__ = ("job_id", "result_index", "page_size", "page_token")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_INDEX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    result_index: int
    page_size: int
    page_token: str
    def __init__(self, job_id: _Optional[str] = ..., result_index: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListExampleOutputsResponse(_message.Message):
    __slots__ = ("outputs", "next_page_token", "total_size")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[ExampleOutputs]
    next_page_token: str
    total_size: int
    def __init__(self, outputs: _Optional[_Iterable[_Union[ExampleOutputs, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class GetSignificanceRequest(_message.Message):
    __slots__ = ("job_id", "result_index")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_INDEX_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    result_index: int
    def __init__(self, job_id: _Optional[str] = ..., result_index: _Optional[int] = ...) -> None: ...

class ListResultsResponse(_message.Message):
    __slots__ = ("results", "next_page_token", "total_size", "baseline")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Result]
    next_page_token: str
    total_size: int
    baseline: Evaluation
    def __init__(self, results: _Optional[_Iterable[_Union[Result, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ..., baseline: _Optional[_Union[Evaluation, _Mapping]] = ...) -> None: ...
