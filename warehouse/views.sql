-- Views over the warehouse tables. CREATE OR REPLACE keeps them idempotent. Numbers stay numbers, unrounded:
-- formatting is the printer's (the `yardstick leaderboard` command, the leaderboard asset's table).

-- The graded samples that count now: of the items a variant's benchmark_items holds (the matrix may have narrowed
-- them since) and, of each, the first k its benchmark_k holds (k may have been lowered since), each with its
-- generation's token counts and its item's answer format. Scores, their check, the paired comparison with a
-- baseline and the costs all count these.
CREATE OR REPLACE VIEW current_graded_answers AS
SELECT
    a.variant, a.config_hash, a.benchmark, a.item_id, a.sample_index,
    a.extracted, a.correct, a.reason,
    i.answer_format,
    g.prompt_tokens, g.cached_prompt_tokens, g.completion_tokens, g.reasoning_tokens
FROM graded_answers a
JOIN benchmark_items i USING (variant, benchmark, item_id)
JOIN benchmark_k k USING (variant, benchmark)
JOIN benchmark_generations g USING (variant, config_hash, benchmark, item_id, sample_index)
WHERE a.sample_index < k.k;

-- The run whose results each variant shows: its latest published evaluation run.
CREATE OR REPLACE VIEW latest_published_runs AS
SELECT variant, arg_max(run_id, evaluated_at) AS run_id, max(evaluated_at) AS published_at
FROM evaluation_runs WHERE status = 'published' GROUP BY variant;

-- Evaluations that failed their check after the results a variant shows: those results are superseded by a
-- failed evaluation (the evidence is the failed expectations), and stay shown until a run passes.
CREATE OR REPLACE VIEW failed_evaluations AS
SELECT r.variant, r.run_id, r.evaluated_at, r.evidence, p.run_id AS shown_run_id, p.published_at AS shown_published_at
FROM evaluation_runs r
LEFT JOIN latest_published_runs p USING (variant)
WHERE r.status = 'failed_check' AND (p.published_at IS NULL OR r.evaluated_at > p.published_at);

-- Published results only: what each variant's latest published run scored, served and cost.
CREATE OR REPLACE VIEW leaderboard AS
SELECT
    s.variant,
    s.benchmark,
    s.protocol,
    s.k,
    s.n_items,
    s.pass_at_1,
    s.pass_at_1_low,
    s.pass_at_1_high,
    s.cons_at_k,
    CASE WHEN q.scheme = 'none' THEN 'none' ELSE q.scheme || ' ' || q.method END AS quantization,
    ql.delta                     AS delta_vs_baseline,      -- pass@1 minus the unquantized baseline's, same items
    ql.delta_low                 AS delta_vs_baseline_low,  -- its 95% paired bootstrap interval
    ql.delta_high                AS delta_vs_baseline_high,
    ql.significant               AS delta_significant,
    r.engine,
    r.engine_version,
    coalesce(c.hardware, 'api:' || c.api_model) AS priced_as,        -- the instance rented, or the API billed
    c.best_profile                              AS priced_profile,   -- the load level the costs are taken at:
    c.best_load                                 AS priced_load,      -- concurrency, or requests/s
    c.meets_slo,
    c.output_tokens_per_s,
    l.ttft_ms_p99,
    l.tpot_ms_p99,
    c.usd_per_million_output_tokens,
    c.owned_usd_per_million_output_tokens,
    b.usd_per_correct_answer,
    s.run_id,                                               -- the published evaluation run shown
    p.published_at,
    f.run_id                     AS superseded_by_failed_run -- a later run whose scores failed the check
FROM published_benchmark_scores s
JOIN latest_published_runs p USING (variant, run_id)
JOIN evaluation_runs r USING (variant, run_id)
LEFT JOIN quantized_models q USING (variant)
LEFT JOIN published_cost_rollup c USING (variant, run_id)
LEFT JOIN published_benchmark_costs b USING (variant, run_id, benchmark)
LEFT JOIN published_quantization_loss ql USING (variant, run_id, benchmark)
LEFT JOIN published_serving_load_levels l
       ON l.variant = c.variant AND l.run_id = c.run_id AND l.profile = c.best_profile AND l.load = c.best_load
LEFT JOIN (SELECT variant, arg_max(run_id, evaluated_at) AS run_id FROM failed_evaluations GROUP BY variant) f
       USING (variant);

-- What regressed between each variant's latest published run and the run before it.
CREATE OR REPLACE VIEW regressions AS
SELECT f.variant, f.kind, f.subject, f.value_before, f.value_after, f.run_id, f.previous_run_id, f.evidence,
       f.checked_at
FROM regression_findings f
JOIN latest_published_runs p USING (variant, run_id)
WHERE f.regressed;
