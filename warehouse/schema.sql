-- yardstick warehouse schema: every table as it is now. A new file is made from it; an older file gets the
-- tables it lacks from it, and warehouse/migrations/ bring the tables it has to this shape.
-- Natural keys are primary keys so a re-run replaces or skips rows instead of duplicating them.

CREATE TABLE IF NOT EXISTS benchmark_items (
    variant        VARCHAR NOT NULL,
    benchmark      VARCHAR NOT NULL,
    item_id        VARCHAR NOT NULL,
    position       INTEGER NOT NULL,   -- order in the source split; "first N items" means position < N
    problem        VARCHAR NOT NULL,
    gold           VARCHAR NOT NULL,   -- normalised gold answer
    gold_raw       VARCHAR NOT NULL,   -- as the dataset writes it
    answer_format  VARCHAR NOT NULL,   -- integer | number | latex
    source         VARCHAR NOT NULL,   -- hub id@revision or mirror file path
    loaded_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (variant, benchmark, item_id)
);

CREATE TABLE IF NOT EXISTS model_snapshots (
    variant            VARCHAR PRIMARY KEY,
    source             VARCHAR NOT NULL,   -- hub | local | generated | external (repo: served model, revision: endpoint)
    repo               VARCHAR,
    revision           VARCHAR,
    commit_sha         VARCHAR,
    local_path         VARCHAR,            -- NULL for external endpoints
    fingerprint        VARCHAR NOT NULL,   -- commit sha for hub snapshots, content fingerprint otherwise
    bytes              BIGINT,
    parameters         BIGINT,
    architecture       VARCHAR,
    model_type         VARCHAR,
    torch_dtype        VARCHAR,
    num_layers         INTEGER,
    hidden_size        INTEGER,
    num_attention_heads INTEGER,
    num_kv_heads       INTEGER,
    head_dim           INTEGER,
    max_position_embeddings INTEGER,
    vocab_size         INTEGER,
    recorded_at        TIMESTAMP NOT NULL,
    config_hash        VARCHAR             -- the key of the samples drawn on these weights (assets.variants.sample_key)
);

CREATE TABLE IF NOT EXISTS quantized_models (
    variant          VARCHAR PRIMARY KEY,
    scheme           VARCHAR NOT NULL,     -- none | W8A16 | ...
    method           VARCHAR NOT NULL,     -- passthrough | rtn | ...
    local_path       VARCHAR,
    bytes_before     BIGINT,
    bytes_after      BIGINT,
    seconds          DOUBLE NOT NULL,
    tool             VARCHAR,
    tool_version     VARCHAR,
    recipe           VARCHAR,
    calibration      VARCHAR,
    recorded_at      TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS engine_deployments (
    variant          VARCHAR NOT NULL,
    run_id           VARCHAR NOT NULL,
    engine           VARCHAR NOT NULL,
    engine_version   VARCHAR,
    argv             VARCHAR,
    base_url         VARCHAR NOT NULL,
    served_model     VARCHAR NOT NULL,
    startup_seconds  DOUBLE,
    peak_rss_bytes   BIGINT,
    gpu_memory_bytes BIGINT,              -- measured, when on a GPU
    memory_plan      VARCHAR,             -- JSON, made before the start
    started_at       TIMESTAMP NOT NULL,
    stopped_at       TIMESTAMP,
    status           VARCHAR NOT NULL,     -- running | stopped | failed (also when it failed to start)
    failure          VARCHAR,              -- why it failed: the step's error, or what recovery found
    requested_engine VARCHAR,              -- the matrix's engine, when its fallback served instead
    engine_note      VARCHAR,              -- why the fallback served
    PRIMARY KEY (variant, run_id)
);

CREATE TABLE IF NOT EXISTS benchmark_generations (
    variant            VARCHAR NOT NULL,
    config_hash        VARCHAR NOT NULL,   -- model, quantization, engine, protocol but k: what shapes a sample
    benchmark          VARCHAR NOT NULL,
    item_id            VARCHAR NOT NULL,
    sample_index       INTEGER NOT NULL,
    response           VARCHAR NOT NULL,   -- content as returned (reasoning inline when the engine keeps it there)
    reasoning_content  VARCHAR,            -- reasoning the engine returned separately
    finish_reason      VARCHAR,
    prompt_tokens      INTEGER,
    cached_prompt_tokens INTEGER,          -- of prompt_tokens, served from the API's prompt cache, when it says
    completion_tokens  INTEGER,
    reasoning_tokens   INTEGER,            -- as the engine reports them, else counted with the model's tokenizer
    answer_tokens      INTEGER,            -- completion_tokens - reasoning_tokens
    latency_seconds    DOUBLE NOT NULL,
    sampling           VARCHAR NOT NULL,   -- JSON of the request's sampling parameters
    seed               BIGINT,             -- sent with the request: one per (benchmark, item, sample), every variant
    attempts           INTEGER,            -- requests it took (1: no retry); NULL for samples made before retries
    last_error         VARCHAR,            -- the last error retried past, when it took more than one
    run_id             VARCHAR NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    PRIMARY KEY (variant, config_hash, benchmark, item_id, sample_index)
);

CREATE TABLE IF NOT EXISTS graded_answers (
    variant          VARCHAR NOT NULL,
    config_hash      VARCHAR NOT NULL,
    benchmark        VARCHAR NOT NULL,
    item_id          VARCHAR NOT NULL,
    sample_index     INTEGER NOT NULL,
    extracted        VARCHAR,
    correct          BOOLEAN NOT NULL,
    reason           VARCHAR NOT NULL,   -- correct | wrong | no_answer | truncated | parse_error | timeout; code:
                                         -- passed | failed_tests | syntax_error | runtime_error | timeout |
                                         -- memory_limit | output_limit | no_code | truncated
    graded_at        TIMESTAMP NOT NULL,
    grader_version   VARCHAR,            -- assets.grading.version; another version's rows are graded again
    detail           VARCHAR,            -- code: a failing program's stderr (or why it was stopped), cut short;
                                         -- kept for inspection, never run or rendered
    PRIMARY KEY (variant, config_hash, benchmark, item_id, sample_index)
);

-- The k each benchmark of a variant counts now: samples are kept when k changes (they are keyed without it), and
-- only those with sample_index < k are graded, scored and priced. Written by graded_answers from the matrix.
CREATE TABLE IF NOT EXISTS benchmark_k (
    variant          VARCHAR NOT NULL,
    benchmark        VARCHAR NOT NULL,
    k                INTEGER NOT NULL,
    PRIMARY KEY (variant, benchmark)
);

CREATE TABLE IF NOT EXISTS benchmark_scores (
    variant          VARCHAR NOT NULL,
    benchmark        VARCHAR NOT NULL,
    config_hash      VARCHAR NOT NULL,
    protocol         VARCHAR NOT NULL,
    k                INTEGER NOT NULL,
    n_items          INTEGER NOT NULL,
    n_samples        INTEGER NOT NULL,
    pass_at_1        DOUBLE NOT NULL,
    pass_at_1_low    DOUBLE NOT NULL,   -- 95% interval, seeded bootstrap over items
    pass_at_1_high   DOUBLE NOT NULL,
    cons_at_k        DOUBLE NOT NULL,
    runnable_rate    DOUBLE,            -- code: share of samples that ran to the end (passed or failed_tests)
    correct_samples  INTEGER NOT NULL,
    output_tokens    BIGINT NOT NULL,
    scored_at        TIMESTAMP NOT NULL,
    PRIMARY KEY (variant, benchmark)
);

CREATE TABLE IF NOT EXISTS benchmark_pass_at_k (
    variant          VARCHAR NOT NULL,
    benchmark        VARCHAR NOT NULL,
    config_hash      VARCHAR NOT NULL,
    k                INTEGER NOT NULL,
    estimate         DOUBLE NOT NULL,   -- unbiased: mean over items of 1 - C(n-c, k) / C(n, k)
    low              DOUBLE NOT NULL,   -- 95% interval, seeded bootstrap over items
    high             DOUBLE NOT NULL,
    PRIMARY KEY (variant, benchmark, k)
);

CREATE TABLE IF NOT EXISTS item_difficulty (
    variant          VARCHAR NOT NULL,
    benchmark        VARCHAR NOT NULL,
    config_hash      VARCHAR NOT NULL,
    item_id          VARCHAR NOT NULL,
    samples          INTEGER NOT NULL,
    correct          INTEGER NOT NULL,
    pass_rate        DOUBLE NOT NULL,
    majority_answer  VARCHAR,            -- the cons@k vote's winner, over equivalence classes
    majority_correct BOOLEAN NOT NULL,
    PRIMARY KEY (variant, benchmark, item_id)
);

-- Per request of the serving benchmark. `profile` is 'concurrency' (closed loop) or 'rate' (Poisson
-- arrivals, requests/s); `load` is the concurrency or the rate.
CREATE TABLE IF NOT EXISTS serving_request_timings (
    variant          VARCHAR NOT NULL,
    profile          VARCHAR NOT NULL,
    load             DOUBLE NOT NULL,
    request_index    INTEGER NOT NULL,
    ok               BOOLEAN NOT NULL,
    error            VARCHAR,
    prompt_tokens    INTEGER,
    output_tokens    INTEGER,
    ttft_ms          DOUBLE,
    tpot_ms          DOUBLE,
    e2el_ms          DOUBLE,
    chunks           INTEGER,
    PRIMARY KEY (variant, profile, load, request_index)
);

-- Per load level: vLLM's definitions (TTFT to the first content or reasoning token; TPOT = (E2E - TTFT) /
-- (tokens - 1); ITL = gaps between chunks, pooled, token-weighted), throughputs, and goodput under the SLOs
-- recorded here.
CREATE TABLE IF NOT EXISTS serving_load_levels (
    variant                 VARCHAR NOT NULL,
    profile                 VARCHAR NOT NULL,
    load                    DOUBLE NOT NULL,
    concurrency             INTEGER,
    request_rate            DOUBLE,
    input_len               INTEGER NOT NULL,   -- synthetic target, or real prompts' mean as counted
    output_len              INTEGER NOT NULL,
    prompts                 VARCHAR,            -- synthetic | a benchmark's name
    completed               INTEGER NOT NULL,
    failed                  INTEGER NOT NULL,
    duration_s              DOUBLE NOT NULL,
    request_throughput      DOUBLE NOT NULL,   -- requests/s
    output_throughput       DOUBLE NOT NULL,   -- output tokens/s
    total_token_throughput  DOUBLE NOT NULL,   -- prompt + output tokens/s
    goodput                 DOUBLE NOT NULL,   -- requests/s that met both SLOs
    slo_ttft_ms             DOUBLE NOT NULL,
    slo_tpot_ms             DOUBLE NOT NULL,
    ttft_ms_mean DOUBLE, ttft_ms_std DOUBLE, ttft_ms_p50 DOUBLE, ttft_ms_p90 DOUBLE, ttft_ms_p95 DOUBLE, ttft_ms_p99 DOUBLE,
    tpot_ms_mean DOUBLE, tpot_ms_std DOUBLE, tpot_ms_p50 DOUBLE, tpot_ms_p90 DOUBLE, tpot_ms_p95 DOUBLE, tpot_ms_p99 DOUBLE,
    itl_ms_mean DOUBLE, itl_ms_std DOUBLE, itl_ms_p50 DOUBLE, itl_ms_p90 DOUBLE, itl_ms_p95 DOUBLE, itl_ms_p99 DOUBLE,
    e2el_ms_mean DOUBLE, e2el_ms_std DOUBLE, e2el_ms_p50 DOUBLE, e2el_ms_p90 DOUBLE, e2el_ms_p95 DOUBLE, e2el_ms_p99 DOUBLE,
    -- What the engine reported at its /metrics during the level (vLLM); NULL where it reports none.
    engine_prefix_cache_hit_rate DOUBLE,        -- prompt tokens found in the prefix cache / tokens looked up
    engine_kv_cache_usage_max   DOUBLE,         -- 0..1 of the KV cache, sampled while the level ran
    engine_kv_cache_usage_mean  DOUBLE,
    engine_running_max          INTEGER,        -- requests in the running batch, sampled
    engine_running_mean         DOUBLE,
    engine_waiting_max          INTEGER,        -- requests queued for a place in it, sampled
    engine_waiting_mean         DOUBLE,
    engine_preemptions          INTEGER,        -- requests evicted from the batch during the level
    engine_queue_time_ms_mean   DOUBLE,         -- mean queue wait of the requests that finished in the level
    -- What the engine's GPUs did during the level, read through NVML (assets/engine/gpu_telemetry.py); NULL
    -- where they were not read, with the reason in gpu_telemetry.
    gpu_telemetry               VARCHAR,        -- measured | not measured: <why>
    gpu_count                   INTEGER,
    gpu_samples                 INTEGER,
    gpu_energy_j                DOUBLE,         -- the GPUs' energy counters' change (else power integrated)
    gpu_power_w_mean            DOUBLE,         -- summed over the GPUs
    gpu_power_w_max             DOUBLE,
    gpu_utilization_mean        DOUBLE,         -- percent, mean over the GPUs
    gpu_memory_used_max_bytes   BIGINT,
    gpu_temperature_max_c       DOUBLE,
    gpu_kwh_per_million_output_tokens DOUBLE,
    gpu_throttle_reasons        VARCHAR,        -- NVML's clock event reasons seen during the level
    gpu_sm_clock_mhz_min        DOUBLE,         -- the slowest GPU's SM clock
    gpu_other_processes         VARCHAR,        -- processes of this host on the engine's GPUs that are not the engine
    -- What else the host did during the level (assets/engine/host_load.py): a level is contended when other
    -- processes, the hypervisor (steal) or memory stalls took more than the stated thresholds.
    host_condition              VARCHAR,        -- clean | contended | not watched: <why>; NULL: measured before
    host_contention             VARCHAR,        -- why it is contended, the busiest other processes named
    host_other_cores            DOUBLE,         -- CPU used by all but the engine's processes and the load generator
    host_engine_cores           DOUBLE,
    host_loadgen_cores          DOUBLE,
    host_steal_cores            DOUBLE,
    host_memory_stall_share     DOUBLE,         -- share of the level some task waited on memory (PSI)
    host_load_avg_1m            DOUBLE,
    host_busiest_others         VARCHAR,
    measured_at             TIMESTAMP NOT NULL,
    PRIMARY KEY (variant, profile, load)
);

CREATE TABLE IF NOT EXISTS cost_rollup (
    variant                     VARCHAR PRIMARY KEY,
    pricing                     VARCHAR NOT NULL,   -- instance: rented by the hour | api: billed by the token
    hardware                    VARCHAR,            -- instance: the price catalog row
    api_model                   VARCHAR,            -- api: the API price catalog row
    usd_per_hour                DOUBLE,
    price_date                  DATE NOT NULL,
    price_source                VARCHAR NOT NULL,
    best_profile                VARCHAR,            -- instance: the load level priced, the fastest that met the SLOs
    best_load                   DOUBLE,
    meets_slo                   BOOLEAN,            -- false: no level met them, the fastest clean one is priced
    priced_failed_share         DOUBLE,             -- instance: the priced level's failed requests, within the bound
    output_tokens_per_s         DOUBLE,
    usd_per_million_output_tokens DOUBLE NOT NULL,  -- instance: measured; api: the list price
    usd_per_million_input_tokens  DOUBLE,           -- api only
    usd_per_million_reasoning_tokens DOUBLE,        -- api only, where reasoning is priced apart
    usd_per_million_cached_input_tokens DOUBLE,     -- api only, where cache hits are priced apart
    owned_usd_per_hour          DOUBLE,             -- ownership mode, when the hardware's purchase price is known
    owned_usd_per_million_output_tokens DOUBLE,
    ownership_terms             VARCHAR,            -- JSON: purchase, power, years, $/kWh, utilisation, PUE, source
    energy_kwh_per_million_output_tokens DOUBLE,    -- measured by NVML at the priced level (× PUE); NULL unmeasured
    energy_usd_per_million_output_tokens DOUBLE,    -- that energy at the prices resource's usd_per_kwh
    prompt_tokens_spent         BIGINT NOT NULL,
    cached_prompt_tokens_spent  BIGINT,             -- of those, served from the API's prompt cache
    output_tokens_spent         BIGINT NOT NULL,    -- completion tokens, reasoning included
    reasoning_tokens_spent      BIGINT NOT NULL,
    usd_spent                   DOUBLE NOT NULL,    -- what the benchmarks' samples cost
    correct_answers             INTEGER NOT NULL,
    usd_per_correct_answer      DOUBLE,             -- NULL when nothing was answered correctly
    computed_at                 TIMESTAMP NOT NULL,
    -- The priced level's host condition: clean levels are priced before any contended one; `contended` here means
    -- every level was measured on a busy host and these figures are not to be trusted.
    priced_host_condition       VARCHAR,
    priced_host_contention      VARCHAR
);

-- A variant against each of its baselines (Matrix.baselines_of): its unquantized twin on the same engine, and the
-- matrix's common reference where that is another variant (an unquantized variant on another engine has it alone).
CREATE TABLE IF NOT EXISTS quantization_loss (
    variant             VARCHAR NOT NULL,
    baseline            VARCHAR NOT NULL,   -- the same model unquantized
    relation            VARCHAR NOT NULL,   -- twin: the same engine's | reference: the matrix's common reference
    benchmark           VARCHAR NOT NULL,
    n_items             INTEGER NOT NULL,   -- items both were scored on
    pass_at_1           DOUBLE NOT NULL,
    baseline_pass_at_1  DOUBLE NOT NULL,
    delta               DOUBLE NOT NULL,    -- pass_at_1 - baseline_pass_at_1: negative is a loss
    delta_low           DOUBLE NOT NULL,    -- 95% paired bootstrap interval over items
    delta_high          DOUBLE NOT NULL,
    significant         BOOLEAN,            -- the interval excludes zero; NULL with fewer than 10 shared items
    computed_at         TIMESTAMP NOT NULL,
    PRIMARY KEY (variant, baseline, benchmark)
);

CREATE TABLE IF NOT EXISTS benchmark_costs (
    variant                VARCHAR NOT NULL,
    benchmark              VARCHAR NOT NULL,
    samples                INTEGER NOT NULL,
    prompt_tokens          BIGINT NOT NULL,
    cached_prompt_tokens   BIGINT,             -- of prompt_tokens, served from the API's prompt cache
    output_tokens          BIGINT NOT NULL,
    reasoning_tokens       BIGINT NOT NULL,
    correct_answers        INTEGER NOT NULL,
    usd_spent              DOUBLE NOT NULL,
    usd_per_correct_answer DOUBLE,
    computed_at            TIMESTAMP NOT NULL,
    PRIMARY KEY (variant, benchmark)
);

-- What a self-hosted variant's benchmark samples would have cost at an API's list prices, token for token (its
-- prompt, cached and completion tokens): the API side of the break_even view. One row per variant and API (the
-- prices resource's compare_apis and the matrix's API baselines), written by cost_rollup.
CREATE TABLE IF NOT EXISTS api_alternatives (
    variant                       VARCHAR NOT NULL,
    api_model                     VARCHAR NOT NULL,   -- a row of the API price catalog
    usd_per_million_input_tokens  DOUBLE NOT NULL,
    usd_per_million_output_tokens DOUBLE NOT NULL,
    price_date                    DATE NOT NULL,
    price_source                  VARCHAR NOT NULL,
    usd_spent                     DOUBLE NOT NULL,    -- the variant's samples at these prices
    output_tokens_spent           BIGINT NOT NULL,
    computed_at                   TIMESTAMP NOT NULL,
    PRIMARY KEY (variant, api_model)
);

-- The files of warehouse/migrations this file has had, each applied once. A file made from this schema is
-- recorded as having had them all.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,   -- the number the migration's file name starts with
    name        VARCHAR NOT NULL,
    applied_at  TIMESTAMP NOT NULL     -- UTC; for a file made from this schema, when it was made
);

-- The views.sql this warehouse's views were made from (its SHA-256): they are made again only when it changes,
-- so that writers opening a shared warehouse do not each replace every view.
CREATE TABLE IF NOT EXISTS schema_views (
    digest      VARCHAR PRIMARY KEY,
    applied_at  TIMESTAMP NOT NULL
);

-- Write, audit, publish. The assets write scores, costs and serving levels into the tables above, which readers do
-- not read: the blocking check audits them, and only a run that passes it reaches `published_evaluation`, which
-- records the evaluation run here and copies its rows into published_<table> (the same columns, plus run_id;
-- made and kept in step with their tables by warehouse.apply_schema). The leaderboard and the documented SQL read
-- the latest published run of each variant; nothing published is overwritten, so the history of every variant
-- stays. A run whose scores fail the check is recorded here too (status failed_check, with the evidence).
CREATE TABLE IF NOT EXISTS evaluation_runs (
    run_id           VARCHAR NOT NULL,
    variant          VARCHAR NOT NULL,
    evaluated_at     TIMESTAMP NOT NULL,
    status           VARCHAR NOT NULL,   -- published | failed_check | failed_run | not_run
    run_trigger      VARCHAR,            -- schedule <name> | sensor <name> | backfill | manual
    model_sha        VARCHAR,            -- the snapshot's commit sha (or fingerprint, or endpoint)
    quantization     VARCHAR,
    engine           VARCHAR,
    engine_version   VARCHAR,
    grader_version   VARCHAR,
    config_hash      VARCHAR,            -- what shapes a sample: model, quantization, engine, sampling, prompt
    seeded           BOOLEAN,            -- samples drawn with per-request seeds (reproducible on the same stack)
    price_date       DATE,               -- of the price the costs are taken at
    evidence         VARCHAR,            -- failed_check: the failed expectations; failed_run, not_run: why (JSON)
    engine_note      VARCHAR,            -- why the engine that served is the matrix's fallback, where it is
    PRIMARY KEY (run_id, variant)
);

-- Each published run's graded samples that counted: what the paired regression test compares run to run.
CREATE TABLE IF NOT EXISTS published_samples (
    run_id           VARCHAR NOT NULL,
    variant          VARCHAR NOT NULL,
    benchmark        VARCHAR NOT NULL,
    item_id          VARCHAR NOT NULL,
    sample_index     INTEGER NOT NULL,
    correct          BOOLEAN NOT NULL,
    extracted        VARCHAR,
    PRIMARY KEY (run_id, variant, benchmark, item_id, sample_index)
);

-- What the regression checks found between a published run and the variant's previous published run (every
-- comparison, regressed or not, with its evidence as JSON). The `regressions` view keeps the regressed ones.
CREATE TABLE IF NOT EXISTS regression_findings (
    run_id           VARCHAR NOT NULL,
    variant          VARCHAR NOT NULL,
    previous_run_id  VARCHAR NOT NULL,
    kind             VARCHAR NOT NULL,   -- accuracy | throughput | latency ttft_ms_p99 | latency tpot_ms_p99 | cost
    subject          VARCHAR NOT NULL,   -- the benchmark, or the priced load level
    regressed        BOOLEAN NOT NULL,
    value_before     DOUBLE,
    value_after      DOUBLE,
    evidence         VARCHAR,            -- JSON: flipped items and the paired test, or the change and threshold
    checked_at       TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, variant, kind, subject)
);
