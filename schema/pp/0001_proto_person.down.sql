DROP TABLE memory_shards;
DROP TABLE raw_conversations;
DROP TABLE bond_history;
DROP TABLE bonds;
DROP TABLE identity_profile;
DROP TABLE user_profiles;
