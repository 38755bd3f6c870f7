-- The delivery forecast of every order open at each cutoff: now (the feed's latest creation_date)
-- and every week back for `forecast_backtest_weeks` weeks, each learning only from the orders
-- finished by its cutoff, so that forecast_calibration can check past forecasts against what
-- happened. See open_order_forecast's docs for the method.

{%- set min_orders = var('forecast_min_orders') %}

with

as_of as (

    select max(creation_date) as as_of from {{ ref('stg_events') }}

),

cutoffs as (

    select as_of.as_of - (weeks.k * 7) * interval '1 day' as cutoff, weeks.k = 0 as is_now
    from as_of
    cross join {{ series('0', var('forecast_backtest_weeks'), 'weeks', 'k') }}

),

stages as (

    select * from {{ ref('int_order_stages') }}

),

-- the orders open at a cutoff, in the stage they were in then
open_then as (

    select
        cutoffs.cutoff,
        cutoffs.is_now,
        stages.order_uuid,
        stages.stage,
        stages.entered_at,
        stages.submitted_at,
        coalesce(stages.saturated_at <= cutoffs.cutoff, false) as is_saturated,
        case when stages.kind_known_at <= cutoffs.cutoff then stages.kind end as kind,
        {{ hours_between('stages.entered_at', 'cutoffs.cutoff') }} as hours_in_stage,
        {{ hours_between('stages.submitted_at', 'cutoffs.cutoff') }} as age_hours
    from cutoffs
    inner join stages
        on stages.entered_at <= cutoffs.cutoff
        and (stages.left_at is null or stages.left_at > cutoffs.cutoff)
        and stages.submitted_at <= cutoffs.cutoff
        and (stages.ended_at is null or stages.ended_at > cutoffs.cutoff)

),

-- an appointment agreed by the cutoff, still ahead then, and not made void since (declined,
-- deferred, missed, obsolete: the catalogue's cancels_appointment): no delivery before it
appointments as (

    select cutoffs.cutoff, agreed.object_uuid as order_uuid, max(agreed.appointment_start) as appointment_start
    from cutoffs
    inner join {{ ref('stg_events') }} as agreed
        on agreed.event_type = 'order-appointment-agreed'
        and agreed.business_time <= cutoffs.cutoff
        and agreed.appointment_start > cutoffs.cutoff
    where not exists (
        select 1
        from {{ ref('int_object_events') }} as later
        inner join {{ ref('event_types') }} as catalogue on later.event_type = catalogue.event_type
        where later.object_uuid = agreed.object_uuid
            and catalogue.cancels_appointment
            and later.business_time > agreed.business_time
            and later.business_time <= cutoffs.cutoff
    )
    group by cutoffs.cutoff, agreed.object_uuid

),

-- what a cutoff could learn from: every stretch begun by then. An order finished by the cutoff
-- says how long it took; one still open then says only that it took longer than it had so far
-- (censored): leaving those out would learn only from the quick ones.
learned as (

    select
        cutoffs.cutoff,
        stages.*,
        coalesce(stages.ended_at <= cutoffs.cutoff, false) as is_finished,
        case when stages.ended_at <= cutoffs.cutoff then stages.ended_at else cutoffs.cutoff end as observed_until,
        case when stages.left_at <= cutoffs.cutoff then stages.left_at else cutoffs.cutoff end as stage_observed_until
    from cutoffs
    inner join stages on stages.entered_at <= cutoffs.cutoff and stages.submitted_at <= cutoffs.cutoff

),

orders_then as (

    select distinct cutoff, order_uuid, submitted_at, outcome, is_finished, observed_until from learned

),

-- the stretches in the same stage at least as long as the open order's, measured from the same
-- point of the stage: how long after it they completed (or were last seen open, or ended
-- otherwise: both censor the observation), and whether their kind as known then (none yet is a
-- state of its own) and their saturation state then were the same
same_stage as (

    select
        open_then.cutoff,
        open_then.order_uuid,
        learned.is_finished,
        learned.is_finished and learned.outcome = 'completed' as completed,
        {{ hours_between("learned.entered_at + open_then.hours_in_stage * interval '1 hour'", 'learned.observed_until') }}
            as remaining_hours,
        coalesce(
            learned.saturated_at <= learned.entered_at + open_then.hours_in_stage * interval '1 hour', false
        ) = open_then.is_saturated as same_saturation,
        coalesce(
            case
                when learned.kind_known_at <= learned.entered_at + open_then.hours_in_stage * interval '1 hour'
                    then learned.kind
            end,
            ''
        ) = coalesce(open_then.kind, '') as same_kind
    from open_then
    inner join learned
        on learned.cutoff = open_then.cutoff
        and learned.order_uuid != open_then.order_uuid
        and learned.stage = open_then.stage
        and {{ hours_between('learned.entered_at', 'learned.stage_observed_until') }} >= open_then.hours_in_stage

),

-- comparable orders, from the narrowest comparison to the widest: the same kind, stage and
-- saturation state (1), the same stage (2), every order just as old (3)
comparable as (

    select cutoff, order_uuid, 1 as comparison, is_finished, completed, remaining_hours
    from same_stage
    where same_kind and same_saturation

    union all

    select cutoff, order_uuid, 2, is_finished, completed, remaining_hours
    from same_stage

    union all

    select
        open_then.cutoff,
        open_then.order_uuid,
        3,
        orders_then.is_finished,
        orders_then.is_finished and orders_then.outcome = 'completed',
        {{ hours_between("orders_then.submitted_at + open_then.age_hours * interval '1 hour'", 'orders_then.observed_until') }}
    from open_then
    inner join orders_then
        on orders_then.cutoff = open_then.cutoff
        and orders_then.order_uuid != open_then.order_uuid
        and {{ hours_between('orders_then.submitted_at', 'orders_then.observed_until') }} >= open_then.age_hours

),

-- Kaplan-Meier: the share of comparable orders not yet completed after t hours, each time an
-- order completes: the product of (1 - completions / orders still observed) up to t
at_each_time as (

    select
        cutoff,
        order_uuid,
        comparison,
        remaining_hours,
        count(case when completed then 1 end) as completions,
        count(*) as leaving
    from comparable
    group by cutoff, order_uuid, comparison, remaining_hours

),

at_risk as (

    select
        *,
        sum(leaving) over (
            partition by cutoff, order_uuid, comparison order by remaining_hours desc
            rows between unbounded preceding and current row
        ) as still_observed
    from at_each_time

),

survival as (

    select
        *,
        case
            when max(case when completions = still_observed then 1 else 0 end) over running = 1 then 0.0
            else exp(sum(
                case when completions > 0 and completions < still_observed
                    then ln(1.0 - 1.0 * completions / still_observed) else 0 end
            )
                over running)
        end as not_yet_completed
    from at_risk
    window running as (
        partition by cutoff, order_uuid, comparison order by remaining_hours
        rows between unbounded preceding and current row
    )

),

by_comparison as (

    select
        comparable.cutoff,
        comparable.order_uuid,
        comparable.comparison,
        count(*) as comparable_orders,
        count(case when comparable.completed then 1 end) as completed_orders,
        count(case when comparable.is_finished and not comparable.completed then 1 end) as ended_otherwise,
        count(case when comparable.is_finished then 1 end) as finished_orders
    from comparable
    group by comparable.cutoff, comparable.order_uuid, comparable.comparison

),

quantiles as (

    select
        cutoff,
        order_uuid,
        comparison,
        -- (a hair above: the product of logarithms lands on 0.5000000001 where the count says 1/2)
        min(case when not_yet_completed <= 0.5 + 1e-9 then remaining_hours end) as p50_remaining_hours,
        min(case when not_yet_completed <= 0.1 + 1e-9 then remaining_hours end) as p90_remaining_hours
    from survival
    group by cutoff, order_uuid, comparison

),

-- the narrowest comparison with enough completed orders; the widest when none has enough
picked as (

    select
        *,
        row_number() over (
            partition by cutoff, order_uuid
            order by case when completed_orders >= {{ min_orders }} then comparison else 10 - comparison end
        ) as preference
    from by_comparison

)

select
    open_then.cutoff,
    open_then.is_now,
    open_then.order_uuid,
    open_then.kind,
    open_then.stage,
    open_then.entered_at as stage_since,
    open_then.hours_in_stage,
    open_then.age_hours,
    open_then.is_saturated,
    case picked.comparison when 1 then 'kind, stage and saturation' when 2 then 'stage' when 3 then 'all orders' end
        as compared_with,
    coalesce(picked.comparable_orders, 0) as comparable_orders,
    coalesce(picked.completed_orders, 0) as completed_orders,
    1.0 * picked.ended_otherwise / nullif(picked.finished_orders, 0) as probability_not_completed,
    quantiles.p50_remaining_hours,
    quantiles.p90_remaining_hours,
    appointments.appointment_start,
    -- an appointment ahead: the delivery comes at the earliest with it
    case
        when appointments.appointment_start is not null and quantiles.p50_remaining_hours is not null
            then greatest(open_then.cutoff + quantiles.p50_remaining_hours * interval '1 hour', appointments.appointment_start)
        else open_then.cutoff + quantiles.p50_remaining_hours * interval '1 hour'
    end as p50_completed_at,
    case
        when appointments.appointment_start is not null and quantiles.p90_remaining_hours is not null
            then greatest(open_then.cutoff + quantiles.p90_remaining_hours * interval '1 hour', appointments.appointment_start)
        else open_then.cutoff + quantiles.p90_remaining_hours * interval '1 hour'
    end as p90_completed_at
from open_then
left join picked
    on open_then.cutoff = picked.cutoff and open_then.order_uuid = picked.order_uuid and picked.preference = 1
left join quantiles
    on picked.cutoff = quantiles.cutoff and picked.order_uuid = quantiles.order_uuid
    and picked.comparison = quantiles.comparison
left join appointments on open_then.cutoff = appointments.cutoff and open_then.order_uuid = appointments.order_uuid
