-- The invitation list shows the open ones first, newest first: this index walks them in that
-- order without touching the rest (consented, revoked), however many those grow to. Which of
-- them have expired depends on `now()`, so that is checked row by row along it.
create index invitations_open_by_age on invitations (created_at desc)
    where status in ('pending', 'opened', 'declined', 'failed');

-- Every invitation has its customer (`customer_id` is not null and references it), so a left
-- join lists the same rows; unlike the inner join, the planner leaves it out of a query that
-- reads nothing of the customer, as the list's count (a scan of `invitations` alone).
create or replace view invitation_view as
select i.*,
       c.name::text as customer_name,
       case when i.status in ('pending', 'opened', 'declined', 'failed') and i.expires_at <= now() then 'expired'
            else i.status end as effective_status
from invitations i left join customers c on c.id = i.customer_id;
