"""The PostgreSQL schema, as versioned migrations: the same data the SQLite store holds, in PostgreSQL's types.

Times stay Unix seconds (double precision) so both backends compute windows, days and reports the
same way; money is numeric (exact, where SQLite keeps Decimal text). Knowledge keeps one vector
table per embedding space (an HNSW index needs one fixed dimension) and, instead of FTS5, a postings
table read by the BM25 query in knowledge_sql.py: one row per (scope, term, chunk) with the term's
hits per column and the chunk's length, so BM25 is computed from real term statistics in SQL.
Terms are made by PostgreSQL's own parser with a stemming dictionary that keeps stopwords (FTS5's
porter tokenizer keeps them too, and document lengths must count them) and splits hyphenated words
into their parts only (as unicode61 does).
Append new migrations at the end; never edit one that has shipped.
"""
from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_conversations",
        """
        CREATE TABLE conversations (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            team_id text NOT NULL,
            channel_id text NOT NULL,
            thread_ts text NOT NULL,
            user_id text NOT NULL,
            title text,
            created_at double precision NOT NULL,
            UNIQUE (channel_id, thread_ts)
        );
        CREATE TABLE messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            conversation_id bigint NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role text NOT NULL CHECK (role IN ('user', 'assistant')),
            -- json, not jsonb: the text is kept byte for byte, so a history read back is the same
            -- request prefix the model saw (prompt caching matches prefixes exactly).
            content json NOT NULL,
            token_count integer,
            user_id text,
            slack_ts text,
            created_at double precision NOT NULL
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE TABLE events (
            event_key text PRIMARY KEY,
            received_at double precision NOT NULL
        );
        CREATE INDEX events_by_time ON events(received_at);
        """,
    ),
    (
        "002_usage_and_limits",
        """
        CREATE TABLE usage (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at double precision NOT NULL,
            team_id text NOT NULL,
            user_id text NOT NULL,
            channel_id text NOT NULL,
            thread_ts text,
            surface text NOT NULL,
            model text NOT NULL,
            input_tokens integer NOT NULL DEFAULT 0,
            output_tokens integer NOT NULL DEFAULT 0,
            cache_creation_input_tokens integer NOT NULL DEFAULT 0,
            cache_read_input_tokens integer NOT NULL DEFAULT 0,
            cost_usd numeric NOT NULL DEFAULT 0,
            latency_ms integer NOT NULL DEFAULT 0,
            stop_reason text,
            error text
        );
        CREATE INDEX usage_by_user_time ON usage(user_id, created_at);
        CREATE INDEX usage_by_team_time ON usage(team_id, created_at);
        CREATE INDEX usage_by_time ON usage(created_at);
        CREATE TABLE requests (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            created_at double precision NOT NULL,
            team_id text NOT NULL,
            user_id text NOT NULL
        );
        CREATE INDEX requests_by_user_time ON requests(user_id, created_at);
        """,
    ),
    (
        "003_feedback_and_assistant_threads",
        """
        CREATE TABLE feedback (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            team_id text NOT NULL,
            channel_id text NOT NULL,
            message_ts text NOT NULL,
            thread_ts text,
            user_id text NOT NULL,
            model text,
            vote text NOT NULL CHECK (vote IN ('up', 'down')),
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            UNIQUE (channel_id, message_ts, user_id)
        );
        CREATE INDEX feedback_by_time ON feedback(updated_at);
        CREATE INDEX feedback_by_user_time ON feedback(user_id, updated_at);
        CREATE TABLE assistant_threads (
            channel_id text NOT NULL,
            thread_ts text NOT NULL,
            user_id text,
            context_channel_id text,
            context_team_id text,
            titled boolean NOT NULL DEFAULT false,
            started_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            PRIMARY KEY (channel_id, thread_ts)
        );
        """,
    ),
    (
        "004_knowledge",
        """
        CREATE TEXT SEARCH DICTIONARY threadbot_stem (TEMPLATE = snowball, LANGUAGE = english);
        CREATE TEXT SEARCH CONFIGURATION threadbot (COPY = english);
        ALTER TEXT SEARCH CONFIGURATION threadbot
            ALTER MAPPING FOR asciiword, word, hword_asciipart, hword_part, numword, hword_numpart
            WITH threadbot_stem;
        ALTER TEXT SEARCH CONFIGURATION threadbot DROP MAPPING FOR asciihword, hword, numhword;

        -- status: 'pending' while its rows are written, 'deleting' while they are purged; only
        -- 'ready' documents are listed or searched. A writer holds a lease it renews per batch, so
        -- a replica that dies mid-upload leaves rows any replica may sweep once the lease is over.
        CREATE TABLE knowledge_documents (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            scope text NOT NULL,
            title text NOT NULL,
            mimetype text,
            kind text NOT NULL,
            sha256 text NOT NULL,
            size_bytes bigint NOT NULL,
            uploaded_by text NOT NULL,
            slack_file_id text,
            permalink text,
            embedding_model text NOT NULL,
            embedding_dim integer NOT NULL,
            chunk_count integer NOT NULL DEFAULT 0,
            created_at double precision NOT NULL,
            status text NOT NULL DEFAULT 'ready' CHECK (status IN ('pending', 'ready', 'deleting')),
            lease_until double precision,
            UNIQUE (scope, sha256)
        );
        CREATE INDEX knowledge_documents_by_scope ON knowledge_documents(scope, id);
        CREATE INDEX knowledge_documents_unready ON knowledge_documents(scope) WHERE status <> 'ready';
        CREATE TABLE knowledge_chunks (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            document_id bigint NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
            ordinal integer NOT NULL,
            scope text NOT NULL,
            section text,
            page integer,
            text text NOT NULL,
            doc_len integer NOT NULL DEFAULT 0
        );
        CREATE INDEX knowledge_chunks_by_document ON knowledge_chunks(document_id, ordinal);
        CREATE INDEX knowledge_chunks_by_scope ON knowledge_chunks(scope);
        -- One row per term per chunk: hits in title, section and text, and the chunk's length, so the
        -- BM25 query reads everything it needs from this index alone.
        CREATE TABLE knowledge_postings (
            scope text NOT NULL,
            term text NOT NULL,
            chunk_id bigint NOT NULL,
            document_id bigint NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
            tf_title smallint NOT NULL,
            tf_section smallint NOT NULL,
            tf_text smallint NOT NULL,
            doc_len integer NOT NULL,
            -- INCLUDE: the BM25 query reads postings from the index alone (an index-only scan).
            PRIMARY KEY (scope, term, chunk_id) INCLUDE (document_id, tf_title, tf_section, tf_text, doc_len)
        );
        CREATE INDEX knowledge_postings_by_document ON knowledge_postings(document_id);
        -- The BM25 statistics of each scope's ready documents (row count, total length), and a
        -- version that moves with every change to its searchable rows (replicas' caches key on it).
        CREATE TABLE knowledge_scope_stats (
            scope text PRIMARY KEY,
            chunks bigint NOT NULL DEFAULT 0,
            total_len bigint NOT NULL DEFAULT 0,
            version bigint NOT NULL DEFAULT 0
        );
        CREATE TABLE knowledge_spaces (
            model text NOT NULL,
            dim integer NOT NULL,
            table_name text NOT NULL UNIQUE,
            PRIMARY KEY (model, dim)
        );
        """,
    ),
    (
        "005_replicas",
        """
        -- Turns waiting to run, per thread (bot/store/postgres/thread_order.py): the oldest live one
        -- runs next; a row stays alive while its replica renews it.
        CREATE TABLE thread_waiters (
            channel_id text NOT NULL,
            thread_ts text NOT NULL,
            ts numeric NOT NULL,
            replica text NOT NULL,
            alive_until double precision NOT NULL,
            PRIMARY KEY (channel_id, thread_ts, ts)
        );
        """,
    ),
    (
        "006_slack_threads",
        """
        -- Channel threads the bot is part of (bot/store/postgres/threads.py). Slack ts values compare
        -- as text (fixed width); COLLATE "C" makes that a byte comparison whatever the database locale.
        CREATE TABLE slack_threads (
            channel_id text NOT NULL,
            thread_ts text COLLATE "C" NOT NULL,
            synced_ts text COLLATE "C",
            seen_ts text COLLATE "C",
            answered boolean NOT NULL DEFAULT false,
            updated_at double precision NOT NULL,
            PRIMARY KEY (channel_id, thread_ts)
        );
        CREATE TABLE slack_thread_messages (
            channel_id text NOT NULL,
            ts text COLLATE "C" NOT NULL,
            thread_ts text COLLATE "C" NOT NULL,
            user_id text NOT NULL,
            bot_id text,
            text text NOT NULL,
            file_names jsonb NOT NULL DEFAULT '[]',
            shown boolean NOT NULL DEFAULT false,
            PRIMARY KEY (channel_id, ts)
        );
        CREATE INDEX slack_thread_messages_by_thread ON slack_thread_messages(channel_id, thread_ts, ts);
        """,
    ),
    (
        "007_blobs",
        """
        -- Content-addressed bytes (images shared with a turn), kept under their sha256.
        CREATE TABLE blobs (
            sha256 text PRIMARY KEY,
            media_type text NOT NULL,
            data bytea NOT NULL,
            created_at double precision NOT NULL
        );
        """,
    ),
    (
        "008_channel_settings",
        """
        -- Per-channel settings (/threadbot) and the log of every change (bot/store/postgres/channel_settings.py).
        -- Values are text as the interface passes them; NULL is the bot's default.
        CREATE TABLE channel_settings (
            channel_id text PRIMARY KEY,
            team_id text NOT NULL,
            prompt text,
            model text,
            tools text,
            autoanswer text,
            updated_by text NOT NULL,
            updated_at double precision NOT NULL
        );
        CREATE TABLE channel_setting_changes (
            id bigserial PRIMARY KEY,
            channel_id text NOT NULL,
            team_id text NOT NULL,
            field text NOT NULL CHECK (field IN ('prompt', 'model', 'tools', 'autoanswer')),
            old_value text,
            new_value text,
            user_id text NOT NULL,
            changed_at double precision NOT NULL
        );
        CREATE INDEX channel_setting_changes_by_channel ON channel_setting_changes(channel_id, id);
        """,
    ),
    (
        "009_slack_thread_message_tokens",
        """
        -- Tokens of each recorded message's text, counted once when recorded (NULL: counted when needed).
        ALTER TABLE slack_thread_messages ADD COLUMN tokens integer;
        """,
    ),
    (
        "010_edit_buckets",
        """
        -- Workspace-wide token buckets for rate-limited Slack methods (chat.update), shared by every
        -- replica (bot/store/postgres/buckets.py). A 429 empties a bucket and moves updated_at past
        -- the Retry-After: nothing refills before then. last_take and checked_at are the last
        -- call's answer, kept so that one upsert can RETURN them.
        CREATE TABLE edit_buckets (
            name text PRIMARY KEY,
            tokens double precision NOT NULL,
            updated_at double precision NOT NULL,
            last_take integer NOT NULL DEFAULT 0,
            checked_at double precision NOT NULL
        );
        """,
    ),
    (
        "011_turns",
        """
        -- Durable turns and their owners' leases (bot/store/postgres/turns.py).
        CREATE TABLE turns (
            id bigserial PRIMARY KEY,
            kind text NOT NULL,
            owner text NOT NULL,
            done boolean NOT NULL DEFAULT false,
            outcome text,
            team_id text NOT NULL,
            channel_id text NOT NULL,
            thread_ts text NOT NULL,
            ts text NOT NULL,
            user_id text NOT NULL,
            surface text NOT NULL,
            text text NOT NULL,
            details jsonb NOT NULL DEFAULT '{}',
            reply_ts text,
            shown_text text,
            streaming boolean NOT NULL DEFAULT false,
            conversation_id bigint,
            question_id bigint,
            accepted_at double precision NOT NULL,
            updated_at double precision NOT NULL
        );
        CREATE INDEX turns_open ON turns(owner) WHERE NOT done;
        CREATE INDEX turns_done ON turns(updated_at) WHERE done;
        CREATE TABLE turn_owners (
            owner text PRIMARY KEY,
            lease_until double precision NOT NULL
        );
        """,
    ),
    (
        "012_approvals",
        """
        -- Approval decisions, recorded by whichever replica gets the click (bot/store/postgres/approvals.py).
        CREATE TABLE approvals (
            approval_id text PRIMARY KEY,
            user_id text NOT NULL,
            decision text,
            decided_by text,
            created_at double precision NOT NULL,
            decided_at double precision
        );
        CREATE INDEX approvals_decided ON approvals(decided_at);
        """,
    ),
]
