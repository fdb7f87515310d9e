-- A load level records what the engine reported at its /metrics meanwhile (vLLM). Levels measured before keep
-- NULL, as do levels of engines that report nothing.
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS engine_prefix_cache_hit_rate DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS engine_kv_cache_usage_max DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS engine_kv_cache_usage_mean DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS engine_running_max INTEGER;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS engine_running_mean DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS engine_waiting_max INTEGER;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS engine_waiting_mean DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS engine_preemptions INTEGER;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS engine_queue_time_ms_mean DOUBLE;
