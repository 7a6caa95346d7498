-- A worker that dies mid-job is not the job's failure: its lease is taken over without counting
-- an attempt. Takeovers are counted apart and bounded on their own, so a job that keeps killing
-- its worker still ends. The count is part of the lease's identity: a worker whose job was taken
-- over can not record anything, even under the same worker id.
alter table jobs add column takeovers integer not null default 0
    constraint jobs_takeovers_check check (takeovers >= 0);
