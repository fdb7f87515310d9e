-- GPU telemetry per serving level (NVML): rows measured before stay NULL, their reason unknown.
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_telemetry VARCHAR;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_count INTEGER;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_samples INTEGER;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_energy_j DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_power_w_mean DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_power_w_max DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_utilization_mean DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_memory_used_max_bytes BIGINT;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_temperature_max_c DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_kwh_per_million_output_tokens DOUBLE;
-- The energy a million output tokens took at the priced level, and its cost at the configured tariff.
ALTER TABLE cost_rollup ADD COLUMN IF NOT EXISTS energy_kwh_per_million_output_tokens DOUBLE;
ALTER TABLE cost_rollup ADD COLUMN IF NOT EXISTS energy_usd_per_million_output_tokens DOUBLE;
