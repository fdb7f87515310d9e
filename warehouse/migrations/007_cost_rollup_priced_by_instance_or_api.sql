-- cost_rollup once priced instances only, by the hour (at first at a concurrency level): no `pricing`
-- column, the instance columns NOT NULL. Rows of that shape are dropped and the next run of the cost_rollup
-- asset (a derived table) makes them again; rows of the current shape are kept, in a table of that shape.
ALTER TABLE cost_rollup ADD COLUMN IF NOT EXISTS pricing VARCHAR;
ALTER TABLE cost_rollup DROP COLUMN IF EXISTS best_concurrency;
ALTER TABLE cost_rollup RENAME TO cost_rollup_before_007;

CREATE TABLE cost_rollup (
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
    output_tokens_per_s         DOUBLE,
    usd_per_million_output_tokens DOUBLE NOT NULL,  -- instance: measured; api: the list price
    usd_per_million_input_tokens  DOUBLE,           -- api only
    usd_per_million_reasoning_tokens DOUBLE,        -- api only, where reasoning is priced apart
    usd_per_million_cached_input_tokens DOUBLE,     -- api only, where cache hits are priced apart
    owned_usd_per_hour          DOUBLE,             -- ownership mode, when the hardware's purchase price is known
    owned_usd_per_million_output_tokens DOUBLE,
    ownership_terms             VARCHAR,            -- JSON: purchase, power, years, $/kWh, utilisation, PUE, source
    prompt_tokens_spent         BIGINT NOT NULL,
    cached_prompt_tokens_spent  BIGINT,             -- of those, served from the API's prompt cache
    output_tokens_spent         BIGINT NOT NULL,    -- completion tokens, reasoning included
    reasoning_tokens_spent      BIGINT NOT NULL,
    usd_spent                   DOUBLE NOT NULL,    -- what the benchmarks' samples cost
    correct_answers             INTEGER NOT NULL,
    usd_per_correct_answer      DOUBLE,             -- NULL when nothing was answered correctly
    computed_at                 TIMESTAMP NOT NULL
);

INSERT INTO cost_rollup BY NAME SELECT * FROM cost_rollup_before_007 WHERE pricing IS NOT NULL;
DROP TABLE cost_rollup_before_007;
