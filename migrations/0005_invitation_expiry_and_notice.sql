-- Expiry holds in every state where the link is still usable, declined and failed included;
-- and what the customer is told about a failed attempt is kept apart from the operator's
-- reason, which may name another customer.
alter table invitations add column customer_notice text;

drop view invitation_view;
create view invitation_view as
select i.*,
       case when i.status in ('pending', 'opened', 'declined', 'failed') and i.expires_at <= now() then 'expired'
            else i.status end as effective_status
from invitations i;
