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
    s.runnable_rate,                                        -- code benchmarks: programs that ran to the end
    CASE WHEN q.scheme = 'none' THEN 'none' ELSE q.scheme || ' ' || q.method END AS quantization,
    ql.delta                     AS delta_vs_baseline,      -- pass@1 minus the unquantized twin's, same items
    ql.delta_low                 AS delta_vs_baseline_low,  -- its 95% paired bootstrap interval
    ql.delta_high                AS delta_vs_baseline_high,
    ql.significant               AS delta_significant,
    qr.delta                     AS delta_vs_reference,     -- pass@1 minus the matrix's common reference's where
    qr.delta_low                 AS delta_vs_reference_low, -- that is not the twin (NULL: the twin is it): the
    qr.delta_high                AS delta_vs_reference_high, -- engine's own effect, with the quantization's if any
    r.engine,
    r.engine_version,
    r.engine_note,                                          -- why a fallback engine served, where one did
    coalesce(c.hardware, 'api:' || c.api_model) AS priced_as,        -- the instance rented, or the API billed
    c.best_profile                              AS priced_profile,   -- the load level the costs are taken at:
    c.best_load                                 AS priced_load,      -- concurrency, or requests/s
    c.meets_slo,
    c.priced_host_condition      AS host_condition,         -- contended: every level was measured on a busy host
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
LEFT JOIN (SELECT * FROM published_quantization_loss WHERE relation = 'twin') ql USING (variant, run_id, benchmark)
LEFT JOIN (SELECT * FROM published_quantization_loss WHERE relation = 'reference') qr
       USING (variant, run_id, benchmark)
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

-- Overthinking, per published sample: each sample of each variant's latest published run with its token counts,
-- whether the length limit cut it, and its item's difficulty: the mean pass rate of the item over every
-- variant's latest published run (so "easy" means easy for the variants evaluated, not for this one alone):
-- easy from 2/3 up, hard below 1/3.
CREATE OR REPLACE VIEW overthinking_samples AS
WITH shown AS (
    SELECT s.variant, s.benchmark, s.item_id, s.sample_index, s.correct, r.config_hash, s.run_id
    FROM published_samples s
    JOIN latest_published_runs p USING (variant, run_id)
    JOIN evaluation_runs r USING (variant, run_id)
), difficulty AS (
    SELECT d.benchmark, d.item_id, avg(d.pass_rate) AS item_pass_rate, count(*) AS variants_seen
    FROM published_item_difficulty d JOIN latest_published_runs p USING (variant, run_id)
    GROUP BY d.benchmark, d.item_id
)
SELECT sh.variant, sh.benchmark, sh.item_id, sh.sample_index, sh.correct,
       g.reasoning_tokens, g.answer_tokens, g.completion_tokens,
       coalesce(g.finish_reason = 'length', false) AS truncated,
       d.item_pass_rate, d.variants_seen,
       CASE WHEN d.item_pass_rate >= 2 / 3 THEN 'easy' WHEN d.item_pass_rate >= 1 / 3 THEN 'medium'
            ELSE 'hard' END AS difficulty
FROM shown sh
JOIN benchmark_generations g USING (variant, config_hash, benchmark, item_id, sample_index)
JOIN difficulty d USING (benchmark, item_id);

-- Overthinking per variant and benchmark: reasoning tokens per sample and per correct answer, accuracy and the
-- share cut by the length limit, over all samples ('all'), by item difficulty ('difficulty': easy, medium,
-- hard) and by the sample's own reasoning length ('reasoning_quartile': Q1 the shortest quarter of the
-- variant's chains on that benchmark, Q4 the longest): accuracy falling from Q1 to Q4 is longer chains ending
-- wrong more often. Samples whose reasoning tokens are unknown count in 'all' and 'difficulty' only.
CREATE OR REPLACE VIEW overthinking AS
WITH ranked AS (
    SELECT *, ntile(4) OVER (PARTITION BY variant, benchmark
                             ORDER BY reasoning_tokens, item_id, sample_index) AS quartile
    FROM overthinking_samples WHERE reasoning_tokens IS NOT NULL
), bucketed AS (
    SELECT variant, benchmark, 'all' AS grouping, 'all' AS bucket, 0 AS bucket_order, correct, reasoning_tokens,
           answer_tokens, truncated FROM overthinking_samples
    UNION ALL
    SELECT variant, benchmark, 'difficulty', difficulty,
           CASE difficulty WHEN 'easy' THEN 1 WHEN 'medium' THEN 2 ELSE 3 END, correct, reasoning_tokens,
           answer_tokens, truncated FROM overthinking_samples
    UNION ALL
    SELECT variant, benchmark, 'reasoning_quartile', 'Q' || quartile, quartile, correct, reasoning_tokens,
           answer_tokens, truncated FROM ranked
)
SELECT variant, benchmark, grouping, bucket, bucket_order,
       count(*)                                                    AS samples,
       count(*) FILTER (WHERE correct)                             AS correct_samples,
       avg(correct::DOUBLE)                                        AS accuracy,
       avg(reasoning_tokens)                                       AS reasoning_tokens_mean,
       min(reasoning_tokens)                                       AS reasoning_tokens_min,
       max(reasoning_tokens)                                       AS reasoning_tokens_max,
       sum(reasoning_tokens) / nullif(count(*) FILTER (WHERE correct), 0) AS reasoning_tokens_per_correct,
       avg(answer_tokens)                                          AS answer_tokens_mean,
       avg(truncated::DOUBLE)                                      AS truncated_share
FROM bucketed
GROUP BY variant, benchmark, grouping, bucket, bucket_order;

-- Break-even volumes, per self-hosted variant (its latest published run) and API: what a month of serving
-- V output tokens costs three ways, at the variant's measured throughput and token mix.
--   api(V)    = V × the API's all-in price per output token (what the variant's own samples, prompts included,
--               would have cost there ÷ their output tokens)
--   rented(V) = n × $/h × 730 h: n = ceil(V / capacity) instances kept up all month; capacity = output tok/s ×
--               3600 × 730 at the priced load level
--   owned(V)  = n × purchase ÷ (years × 12) + the energy of the busy hours (V ÷ tok/s ÷ 3600 × kW × PUE × $/kWh);
--               NULL where the ownership catalog has no purchase price for the hardware
-- The crossovers are within one instance's capacity (NULL: no crossing there, the API stays cheaper up to it):
-- rented_beats_api_above, owned_beats_api_above (tokens per month), and owned_vs_rented_usd_per_month (what
-- owning saves on renting each month at full capacity; negative: renting is cheaper).
CREATE OR REPLACE VIEW break_even AS
WITH hosted AS (
    SELECT c.variant, c.run_id, c.hardware, c.output_tokens_per_s, c.usd_per_hour,
           c.usd_per_hour * 730 AS rented_usd_per_month,
           c.output_tokens_per_s * 3600 * 730 AS capacity_tokens_per_month,
           CAST(json_extract(c.ownership_terms, '$.purchase_usd') AS DOUBLE)
             * coalesce(CAST(json_extract(c.ownership_terms, '$.nodes') AS DOUBLE), 1)
             / (CAST(json_extract(c.ownership_terms, '$.years') AS DOUBLE) * 12) AS owned_usd_per_month_fixed,
           CAST(json_extract(c.ownership_terms, '$.power_kw') AS DOUBLE)
             * coalesce(CAST(json_extract(c.ownership_terms, '$.nodes') AS DOUBLE), 1)
             * CAST(json_extract(c.ownership_terms, '$.pue') AS DOUBLE)
             * CAST(json_extract(c.ownership_terms, '$.usd_per_kwh') AS DOUBLE)
             / (c.output_tokens_per_s * 3600) AS owned_energy_usd_per_token
    FROM published_cost_rollup c JOIN latest_published_runs p USING (variant, run_id)
    WHERE c.pricing = 'instance' AND c.output_tokens_per_s > 0
), priced AS (
    SELECT h.*, a.api_model, a.usd_spent / a.output_tokens_spent AS api_usd_per_token
    FROM hosted h JOIN published_api_alternatives a USING (variant, run_id)
    WHERE a.output_tokens_spent > 0
)
SELECT variant, hardware, api_model, output_tokens_per_s, capacity_tokens_per_month, rented_usd_per_month,
       owned_usd_per_month_fixed, owned_energy_usd_per_token * 1e6 AS owned_energy_usd_per_million_tokens,
       api_usd_per_token * 1e6 AS api_usd_per_million_output_tokens,
       CASE WHEN rented_usd_per_month / api_usd_per_token <= capacity_tokens_per_month
            THEN rented_usd_per_month / api_usd_per_token END AS rented_beats_api_above,
       CASE WHEN api_usd_per_token > owned_energy_usd_per_token
             AND owned_usd_per_month_fixed / (api_usd_per_token - owned_energy_usd_per_token)
                 <= capacity_tokens_per_month
            THEN owned_usd_per_month_fixed / (api_usd_per_token - owned_energy_usd_per_token) END
            AS owned_beats_api_above,
       rented_usd_per_month - (owned_usd_per_month_fixed + owned_energy_usd_per_token * capacity_tokens_per_month)
            AS owned_vs_rented_usd_per_month,
       run_id
FROM priced;

-- The three cost curves of break_even at monthly volumes from 10^5 to 10^11 output tokens (1, 2, 5 per decade):
-- option 'rented', 'owned' or 'api:<model>', $ per month.
CREATE OR REPLACE VIEW break_even_curve AS
WITH volumes AS (
    SELECT m * 10 ** e AS tokens_per_month
    FROM range(5, 12) AS exponents(e), (VALUES (1), (2), (5)) AS steps(m)
), options AS (
    SELECT DISTINCT variant, hardware, 'rented' AS option, rented_usd_per_month AS fixed, 0.0 AS per_token,
           capacity_tokens_per_month FROM break_even
    UNION ALL
    SELECT DISTINCT variant, hardware, 'owned', owned_usd_per_month_fixed, owned_energy_usd_per_million_tokens / 1e6,
           capacity_tokens_per_month FROM break_even WHERE owned_usd_per_month_fixed IS NOT NULL
    UNION ALL
    SELECT variant, hardware, 'api:' || api_model, 0.0, api_usd_per_million_output_tokens / 1e6,
           NULL FROM break_even
)
SELECT o.variant, o.hardware, o.option, v.tokens_per_month,
       CASE WHEN o.capacity_tokens_per_month IS NULL THEN o.per_token * v.tokens_per_month
            ELSE ceil(v.tokens_per_month / o.capacity_tokens_per_month) * o.fixed + o.per_token * v.tokens_per_month
       END AS usd_per_month
FROM options o, volumes v
WHERE v.tokens_per_month <= 1e11;
