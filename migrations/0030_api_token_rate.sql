-- A token's own JSON API rate (calls per second); null: the System Settings default.
alter table api_tokens
    add column calls_per_second integer
        constraint api_tokens_calls_per_second_range check (calls_per_second between 1 and 100000);
