-- A deployment records the memory plan made before the start, and the GPU memory measured on a GPU.
ALTER TABLE engine_deployments ADD COLUMN IF NOT EXISTS memory_plan VARCHAR;
ALTER TABLE engine_deployments ADD COLUMN IF NOT EXISTS gpu_memory_bytes BIGINT;
