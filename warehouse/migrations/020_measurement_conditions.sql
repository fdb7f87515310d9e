-- What else the host did during each serving level (assets/engine/host_load.py), and whether the priced level was
-- measured on a busy host. Levels measured before have NULL conditions: not known, neither clean nor contended.
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS host_condition VARCHAR;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS host_contention VARCHAR;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS host_other_cores DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS host_engine_cores DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS host_loadgen_cores DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS host_steal_cores DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS host_memory_stall_share DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS host_load_avg_1m DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS host_busiest_others VARCHAR;
ALTER TABLE cost_rollup ADD COLUMN IF NOT EXISTS priced_host_condition VARCHAR;
ALTER TABLE cost_rollup ADD COLUMN IF NOT EXISTS priced_host_contention VARCHAR;
-- On a GPU: the clock event (throttle) reasons seen, the slowest SM clock, and other processes on the engine's GPUs.
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_throttle_reasons VARCHAR;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_sm_clock_mhz_min DOUBLE;
ALTER TABLE serving_load_levels ADD COLUMN IF NOT EXISTS gpu_other_processes VARCHAR;
