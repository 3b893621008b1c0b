-- pp 0001: one proto-person's memory (a superset of the original pp_schema shapes).
-- Runs as the AI's own role, which owns the database; :embedding_dim comes from schema.embedding_dim.

CREATE TABLE user_profiles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    external_id  text UNIQUE,
    display_name text,
    preferences  jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE identity_profile (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    description text,
    traits      jsonb NOT NULL DEFAULT '{}',
    embedding   vector(:embedding_dim),
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Bonds: relationships of this AI with users and with other AIs, and their history.
CREATE TABLE bonds (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    counterpart   text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('user', 'ai')),
    strength      real NOT NULL DEFAULT 0 CHECK (strength BETWEEN -1 AND 1),
    user_id       uuid REFERENCES user_profiles (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (counterpart, kind)
);

CREATE TABLE bond_history (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bond_id     uuid REFERENCES bonds (id) ON DELETE CASCADE,
    user_id     uuid REFERENCES user_profiles (id) ON DELETE SET NULL,
    event_type  text NOT NULL,
    delta       real NOT NULL DEFAULT 0,
    notes       text,
    metadata    jsonb NOT NULL DEFAULT '{}',
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bond_history_bond_time ON bond_history (bond_id, occurred_at DESC);
CREATE INDEX bond_history_user_time ON bond_history (user_id, occurred_at DESC);

CREATE TABLE raw_conversations (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           uuid REFERENCES user_profiles (id) ON DELETE SET NULL,
    session_id        text,
    role              text NOT NULL DEFAULT 'user',
    content           text NOT NULL,
    embedding         vector(:embedding_dim),
    entropy           real,
    emotional_valence real,
    surprise          real,
    metadata          jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX raw_conversations_user_time ON raw_conversations (user_id, created_at DESC);
CREATE INDEX raw_conversations_session ON raw_conversations (session_id, created_at);
CREATE INDEX raw_conversations_entropy ON raw_conversations (entropy);
CREATE INDEX raw_conversations_emotional ON raw_conversations (emotional_valence);
CREATE INDEX raw_conversations_surprise ON raw_conversations (surprise);

CREATE TABLE memory_shards (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    content          text NOT NULL,
    source_ids       uuid[] NOT NULL DEFAULT '{}',
    tags             text[] NOT NULL DEFAULT '{}',
    embedding        vector(:embedding_dim),
    importance       real NOT NULL DEFAULT 0.5 CHECK (importance BETWEEN 0 AND 1),
    priority_score   real NOT NULL DEFAULT 0,
    retention_policy text NOT NULL DEFAULT 'standard'
                     CHECK (retention_policy IN ('ephemeral', 'standard', 'permanent')),
    access_count     integer NOT NULL DEFAULT 0,
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_accessed_at timestamptz
);
CREATE INDEX memory_shards_tags_gin ON memory_shards USING gin (tags);
CREATE INDEX memory_shards_priority ON memory_shards (priority_score DESC);
CREATE INDEX memory_shards_created ON memory_shards (created_at DESC);
CREATE INDEX memory_shards_retention ON memory_shards (retention_policy);
