-- Views over the warehouse tables. CREATE OR REPLACE keeps them idempotent.

CREATE OR REPLACE VIEW leaderboard AS
SELECT
    s.variant,
    s.benchmark,
    s.protocol,
    s.k,
    s.n_items,
    round(s.pass_at_1, 4)        AS pass_at_1,
    round(s.pass_at_1_low, 4)    AS pass_at_1_low,
    round(s.pass_at_1_high, 4)   AS pass_at_1_high,
    round(s.cons_at_k, 4)        AS cons_at_k,
    CASE WHEN q.scheme = 'none' THEN 'none' ELSE q.scheme || ' ' || q.method END AS quantization,
    round(ql.delta, 4)           AS delta_vs_baseline,     -- pass@1 minus the unquantized baseline's, same items
    '[' || round(ql.delta_low, 3) || ', ' || round(ql.delta_high, 3) || ']' AS delta_interval,
    ql.significant               AS delta_significant,
    d.engine,
    coalesce(c.hardware, 'api:' || c.api_model) AS priced_as,        -- the instance rented, or the API billed
    c.best_profile || '=' || c.best_load        AS priced_load,      -- the load level the costs are taken at
    c.meets_slo,
    round(c.output_tokens_per_s, 2)             AS output_tokens_per_s,
    round(l.ttft_ms_p99, 1)                     AS ttft_ms_p99,
    round(l.tpot_ms_p99, 2)                     AS tpot_ms_p99,
    round(c.usd_per_million_output_tokens, 4)   AS usd_per_million_output_tokens,
    round(c.owned_usd_per_million_output_tokens, 4) AS owned_usd_per_million_output_tokens,
    round(b.usd_per_correct_answer, 6)          AS usd_per_correct_answer
FROM benchmark_scores s
LEFT JOIN quantized_models q USING (variant)
LEFT JOIN (
    SELECT variant, arg_max(engine, started_at) AS engine FROM engine_deployments GROUP BY variant
) d USING (variant)
LEFT JOIN cost_rollup c USING (variant)
LEFT JOIN benchmark_costs b USING (variant, benchmark)
LEFT JOIN quantization_loss ql USING (variant, benchmark)
LEFT JOIN serving_load_levels l
       ON l.variant = c.variant AND l.profile = c.best_profile AND l.load = c.best_load;
