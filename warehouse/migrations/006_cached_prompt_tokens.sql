-- Prompt tokens served from an API's prompt cache are counted, and priced apart where the API does.
ALTER TABLE benchmark_generations ADD COLUMN IF NOT EXISTS cached_prompt_tokens INTEGER;
ALTER TABLE benchmark_costs ADD COLUMN IF NOT EXISTS cached_prompt_tokens BIGINT;
ALTER TABLE cost_rollup ADD COLUMN IF NOT EXISTS usd_per_million_cached_input_tokens DOUBLE;
ALTER TABLE cost_rollup ADD COLUMN IF NOT EXISTS cached_prompt_tokens_spent BIGINT;
