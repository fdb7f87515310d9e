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
    d.engine,
    d.engine_version,
    coalesce(c.hardware, 'api:' || c.api_model) AS priced_as,        -- the instance rented, or the API billed
    c.best_profile                              AS priced_profile,   -- the load level the costs are taken at:
    c.best_load                                 AS priced_load,      -- concurrency, or requests/s
    c.meets_slo,
    c.output_tokens_per_s,
    l.ttft_ms_p99,
    l.tpot_ms_p99,
    c.usd_per_million_output_tokens,
    c.owned_usd_per_million_output_tokens,
    b.usd_per_correct_answer
FROM benchmark_scores s
LEFT JOIN quantized_models q USING (variant)
LEFT JOIN (
    SELECT variant, arg_max(engine, started_at) AS engine, arg_max(engine_version, started_at) AS engine_version
    FROM engine_deployments GROUP BY variant
) d USING (variant)
LEFT JOIN cost_rollup c USING (variant)
LEFT JOIN benchmark_costs b USING (variant, benchmark)
LEFT JOIN quantization_loss ql USING (variant, benchmark)
LEFT JOIN serving_load_levels l
       ON l.variant = c.variant AND l.profile = c.best_profile AND l.load = c.best_load;
