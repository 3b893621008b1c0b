-- forge 0001: Prompted Forge's logical data model (seed 001, "Core Entities"), as its design document
-- writes it; runs as the database's owner. gen_random_uuid() is core PostgreSQL.

CREATE TABLE memory_objects (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  tier VARCHAR(20) NOT NULL CHECK (tier IN ('WORKING', 'EPISODIC', 'SEMANTIC', 'SHARED')),
  content TEXT NOT NULL,
  metadata JSONB DEFAULT '{}',
  context_analysis JSONB DEFAULT '{}',
  policy_decisions JSONB DEFAULT '{}',
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  accessed_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  retention_until TIMESTAMP WITH TIME ZONE,
  compressed BOOLEAN DEFAULT FALSE,
  compression_metadata JSONB DEFAULT '{}'
);

CREATE INDEX idx_memory_objects_tier ON memory_objects(tier);
CREATE INDEX idx_memory_objects_created_at ON memory_objects(created_at);
CREATE INDEX idx_memory_objects_retention ON memory_objects(retention_until) WHERE retention_until IS NOT NULL;
CREATE INDEX idx_memory_objects_metadata_gin ON memory_objects USING GIN(metadata);
CREATE INDEX idx_memory_objects_context_gin ON memory_objects USING GIN(context_analysis);

CREATE TABLE memory_relationships (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  source_id UUID NOT NULL REFERENCES memory_objects(id) ON DELETE CASCADE,
  target_id UUID NOT NULL REFERENCES memory_objects(id) ON DELETE CASCADE,
  relationship_type VARCHAR(50) NOT NULL,
  confidence DECIMAL(3,2) DEFAULT 0.50 CHECK (confidence >= 0 AND confidence <= 1),
  metadata JSONB DEFAULT '{}',
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  UNIQUE(source_id, target_id, relationship_type)
);

CREATE INDEX idx_memory_relationships_source ON memory_relationships(source_id);
CREATE INDEX idx_memory_relationships_target ON memory_relationships(target_id);

CREATE TABLE policy_audit_log (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  memory_id UUID REFERENCES memory_objects(id) ON DELETE SET NULL,
  policy_type VARCHAR(50) NOT NULL,
  action VARCHAR(20) NOT NULL,
  rule_id VARCHAR(100) NOT NULL,
  decision JSONB NOT NULL,
  applied_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  trace_id VARCHAR(100),
  request_id VARCHAR(100)
);

CREATE INDEX idx_policy_audit_log_memory_id ON policy_audit_log(memory_id);
CREATE INDEX idx_policy_audit_log_applied_at ON policy_audit_log(applied_at);
CREATE INDEX idx_policy_audit_log_trace_id ON policy_audit_log(trace_id);

CREATE TABLE context_analysis_cache (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  content_hash VARCHAR(64) NOT NULL UNIQUE,
  analysis_result JSONB NOT NULL,
  confidence DECIMAL(3,2) NOT NULL,
  engine_version VARCHAR(10) NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
  expires_at TIMESTAMP WITH TIME ZONE NOT NULL
);

CREATE INDEX idx_context_cache_hash ON context_analysis_cache(content_hash);
CREATE INDEX idx_context_cache_expires ON context_analysis_cache(expires_at);
