{#- The delivery forecast of every order open at each of a set of cutoffs, as it could have been
    made at that instant: from the events that had reached the API by then (creation_date <= the
    cutoff), each in its version as known then (stg_event_versions: the latest version modified
    by the cutoff, else the earliest one held), never from what came later. The live forecast
    (int_order_forecasts_now) and every past cutoff (int_order_forecasts_past) are this one query,
    so a past cutoff is exactly the live forecast a warehouse would have made then.

    `cutoffs`: SQL returning (cutoff timestamp, is_now boolean). See open_order_forecast's docs
    for the method.

    Why by classes of time: comparing each open order with every stretch of history, at its own
    time in stage, costs open orders x history (on 10,000 orders, 5 minutes and 18 GB). Here one
    survival curve is learned per cutoff, comparison and class of time
    (`forecast_time_classes_hours`), and each open order reads its own point off its class's
    curve. Times on a curve are counted in whole hours (rounded up): a curve then has a point per
    hour at most instead of one per order, which keeps the Kaplan-Meier passes small.

    Why a learning window (`forecast_learning_days`): a cutoff learns from the stretches begun in
    the days before it (and from the stretches still going on then), so its cost follows the
    window, not the whole history, and it follows the operator's present pace rather than that
    of years ago. Orders open at the cutoff are forecast whatever their age.

    What a cutoff cannot know: a version of an event the builds never saw (replaced between two
    loads, or before the backfill: the earliest version held stands for it); an event whose every
    version is dated outside the learning window or that arrived more than that window late. -#}
{% macro order_forecasts(cutoffs) -%}
{%- set min_orders = var('forecast_min_orders') %}
{%- set classes = var('forecast_time_classes_hours') %}
{%- set learning_days = var('forecast_learning_days') %}

with

cutoffs as (

    {{ cutoffs }}

),

-- where each class of time (in a stage, or since submission) begins, in hours
time_classes as (

    {% for start in [0] + classes | reject('equalto', 0) | list %}
    select {{ start }} as class_start{% if not loop.last %} union all{% endif %}
    {%- endfor %}

),

-- the orders a cutoff may need, read off what is known now (a superset: everything below is
-- decided from the events known at the cutoff): open now, or with an event in the window
candidates as (

    select cutoffs.cutoff, status.order_uuid
    from cutoffs
    inner join {{ ref('int_order_status') }} as status
        on not status.is_final
        or status.last_event_at >= cutoffs.cutoff - {{ learning_days }} * interval '1 day'

),

-- their events known at the cutoff, each in its version then
versions as (

    select
        candidates.cutoff,
        versions.*,
        row_number() over (
            partition by candidates.cutoff, versions.event_uuid
            order by
                case when versions.modification_date <= candidates.cutoff then 0 else 1 end,
                case when versions.modification_date <= candidates.cutoff then versions.modification_date end desc,
                case when versions.modification_date <= candidates.cutoff then versions._dlt_load_id end desc,
                versions._dlt_load_id
        ) as version_rank
    from candidates
    inner join {{ ref('stg_event_versions') }} as versions
        on versions.object_uuid = candidates.order_uuid
        and versions.object_type = 'order'
        and versions.creation_date <= candidates.cutoff

),

known as (

    select
        versions.cutoff,
        versions.object_uuid as order_uuid,
        versions.event_uuid,
        versions.event_type,
        versions.business_time,
        versions.creation_date,
        versions.appointment_start,
        catalogue.status,
        coalesce(catalogue.is_final, false) as is_final,
        catalogue.lifecycle_rank,
        catalogue.milestone,
        coalesce(catalogue.cancels_appointment, false) as cancels_appointment,
        -- a report is a Fiber Pro event, whatever its type is called
        coalesce(catalogue.reveals_kind, case when versions.is_report then 'Fiber Pro' end) as reveals_kind
    from versions
    left join {{ ref('event_types') }} as catalogue on versions.event_type = catalogue.event_type
    where versions.version_rank = 1

),

-- each order as known at the cutoff: submission, first saturation, the kind its events had
-- revealed (two kinds: none), and its latest status (in the story's order, int_object_events)
order_facts as (

    select
        cutoff,
        order_uuid,
        min(case when milestone = 'submitted_at' then business_time end) as submitted_at,
        min(case when milestone = 'saturated_at' then business_time end) as saturated_at,
        case when min(reveals_kind) = max(reveals_kind) then max(reveals_kind) end as kind,
        case when min(reveals_kind) = max(reveals_kind) then min(case when reveals_kind is not null then business_time end) end
            as kind_known_at
    from known
    group by cutoff, order_uuid

),

status_events as (

    select
        cutoff,
        order_uuid,
        status,
        is_final,
        business_time,
        lead(business_time) over story as next_status_at,
        row_number() over (partition by cutoff, order_uuid order by business_time desc,
            lifecycle_rank desc nulls first, creation_date desc, event_uuid desc) as recency
    from known
    where status is not null
    window story as (partition by cutoff, order_uuid order by business_time, lifecycle_rank nulls last, creation_date, event_uuid)

),

-- each stretch of an order's life in one status, with how and when the order ended
stages as (

    select
        status_events.cutoff,
        status_events.order_uuid,
        status_events.status as stage,
        status_events.business_time as entered_at,
        status_events.next_status_at as left_at,
        order_facts.submitted_at,
        order_facts.saturated_at,
        order_facts.kind,
        order_facts.kind_known_at,
        case when latest.is_final then latest.status else 'open' end as outcome,
        case when latest.is_final then latest.business_time end as ended_at
    from status_events
    inner join order_facts
        on status_events.cutoff = order_facts.cutoff and status_events.order_uuid = order_facts.order_uuid
    inner join status_events as latest
        on status_events.cutoff = latest.cutoff and status_events.order_uuid = latest.order_uuid and latest.recency = 1
    where not status_events.is_final

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
        stages.saturated_at,
        stages.kind_known_at,
        coalesce(stages.saturated_at <= cutoffs.cutoff, false) as is_saturated,
        case when stages.kind_known_at <= cutoffs.cutoff then stages.kind end as kind,
        {{ hours_between('stages.entered_at', 'cutoffs.cutoff') }} as hours_in_stage,
        {{ hours_between('stages.submitted_at', 'cutoffs.cutoff') }} as age_hours
    from cutoffs
    inner join stages
        on stages.cutoff = cutoffs.cutoff
        and stages.entered_at <= cutoffs.cutoff
        and (stages.left_at is null or stages.left_at > cutoffs.cutoff)
        and stages.submitted_at <= cutoffs.cutoff
        and (stages.ended_at is null or stages.ended_at > cutoffs.cutoff)

),

-- each of them with the class of its time in stage, and of its age
open_classes as (

    select open_then.*, classes.stage_class, classes.age_class
    from open_then
    inner join (
        select
            open_then.cutoff,
            open_then.order_uuid,
            max(case when time_classes.class_start <= open_then.hours_in_stage then time_classes.class_start end)
                as stage_class,
            max(case when time_classes.class_start <= open_then.age_hours then time_classes.class_start end)
                as age_class
        from open_then
        cross join time_classes
        group by open_then.cutoff, open_then.order_uuid
    ) as classes
        on open_then.cutoff = classes.cutoff and open_then.order_uuid = classes.order_uuid

),

-- an appointment agreed by the cutoff, still ahead then, and not made void since (declined,
-- deferred, missed, obsolete: the catalogue's cancels_appointment): no delivery before it
appointments as (

    select agreed.cutoff, agreed.order_uuid, max(agreed.appointment_start) as appointment_start
    from known as agreed
    where agreed.event_type = 'order-appointment-agreed'
        and agreed.business_time <= agreed.cutoff
        and agreed.appointment_start > agreed.cutoff
        and not exists (
            select 1
            from known as later
            where later.cutoff = agreed.cutoff
                and later.order_uuid = agreed.order_uuid
                and later.cancels_appointment
                and later.business_time > agreed.business_time
                and later.business_time <= agreed.cutoff
        )
    group by agreed.cutoff, agreed.order_uuid

),

-- what a cutoff learns from: every stretch begun in the window before it, and every one still
-- going on at the cutoff (each open order's own among them). An order finished by
-- the cutoff says how long it took; one still open then says only that it took longer than it
-- had so far (censored): leaving those out would learn only from the quick ones.
learned as (

    select
        cutoffs.cutoff,
        stages.order_uuid,
        stages.stage,
        stages.entered_at,
        stages.submitted_at,
        stages.saturated_at,
        stages.kind,
        stages.kind_known_at,
        stages.outcome,
        coalesce(stages.ended_at <= cutoffs.cutoff, false) as is_finished,
        coalesce(stages.ended_at <= cutoffs.cutoff and stages.outcome = 'completed', false) as completed,
        case when stages.ended_at <= cutoffs.cutoff then stages.ended_at else cutoffs.cutoff end as observed_until,
        case when stages.left_at <= cutoffs.cutoff then stages.left_at else cutoffs.cutoff end as stage_observed_until
    from cutoffs
    inner join stages
        on stages.cutoff = cutoffs.cutoff
        and stages.entered_at <= cutoffs.cutoff
        and stages.submitted_at <= cutoffs.cutoff
        and (
            stages.entered_at >= cutoffs.cutoff - {{ learning_days }} * interval '1 day'
            -- a stretch still going on at the cutoff, however old: a long wait is worth knowing
            or (stages.left_at is null or stages.left_at > cutoffs.cutoff)
            and (stages.ended_at is null or stages.ended_at > cutoffs.cutoff)
        )

),

orders_then as (

    select distinct cutoff, order_uuid, submitted_at, is_finished, completed, observed_until from learned

),

-- the naive forecast forecast_calibration compares with: the median lead time of the orders
-- in the window that had completed by the cutoff
naive as (

    select
        cutoff,
        percentile_cont(0.5) within group (order by {{ hours_between('submitted_at', 'observed_until') }})
            as naive_lead_time_hours
    from orders_then
    where completed
    group by cutoff

),

-- the stretches that stayed in a stage at least to the start of a class some open order is in,
-- seen from that point: t, the hours from it until they completed (or were last seen open, or
-- ended otherwise: both censor the observation), rounded up to the hour, and their kind as known
-- then (none yet is a state of its own) and saturation state then
from_stage_class as (

    select
        learned.cutoff,
        learned.stage,
        occupied.class_start,
        coalesce(
            case
                when learned.kind_known_at <= learned.entered_at + occupied.class_start * interval '1 hour'
                    then learned.kind
            end,
            ''
        ) as kind,
        coalesce(learned.saturated_at <= learned.entered_at + occupied.class_start * interval '1 hour', false)
            as is_saturated,
        learned.is_finished,
        learned.completed,
        ceil({{ hours_between('learned.entered_at', 'learned.observed_until') }} - occupied.class_start) as t
    from (
        select distinct cutoff, stage, stage_class as class_start from open_classes
    ) as occupied
    inner join learned
        on learned.cutoff = occupied.cutoff
        and learned.stage = occupied.stage
        and {{ hours_between('learned.entered_at', 'learned.stage_observed_until') }} >= occupied.class_start

),

-- the same from submission: every order at least as old as a class some open order is in
from_age_class as (

    select
        orders_then.cutoff,
        occupied.class_start,
        orders_then.is_finished,
        orders_then.completed,
        ceil({{ hours_between('orders_then.submitted_at', 'orders_then.observed_until') }} - occupied.class_start) as t
    from (select distinct cutoff, age_class as class_start from open_classes) as occupied
    inner join orders_then
        on orders_then.cutoff = occupied.cutoff
        and {{ hours_between('orders_then.submitted_at', 'orders_then.observed_until') }} >= occupied.class_start

),

-- the comparisons, narrowest first: the same kind, stage and saturation state (1), the same
-- stage (2), every order (3); a curve is one (cutoff, comparison, stage, class, kind, saturation)
comparable as (

    select cutoff, 1 as comparison, stage, class_start, kind, is_saturated, is_finished, completed, t
    from from_stage_class

    union all

    select cutoff, 2, stage, class_start, '', false, is_finished, completed, t
    from from_stage_class

    union all

    select cutoff, 3, '', class_start, '', false, is_finished, completed, t
    from from_age_class

),

-- each open order's point on the curve of each comparison: d hours after its class start.
-- Its own stretch is on the curve (censored at d) when its state at the class start was its
-- state now; it is not counted among the comparable orders.
points as (

    select
        open_classes.cutoff,
        open_classes.order_uuid,
        1 as comparison,
        open_classes.stage,
        open_classes.stage_class as class_start,
        coalesce(open_classes.kind, '') as kind,
        open_classes.is_saturated,
        open_classes.hours_in_stage - open_classes.stage_class as d,
        case
            when coalesce(
                case
                    when open_classes.kind_known_at <= open_classes.entered_at + open_classes.stage_class * interval '1 hour'
                        then open_classes.kind
                end,
                ''
            ) = coalesce(open_classes.kind, '')
            and coalesce(
                open_classes.saturated_at <= open_classes.entered_at + open_classes.stage_class * interval '1 hour', false
            ) = open_classes.is_saturated
                then 1
            else 0
        end as itself
    from open_classes

    union all

    select
        open_classes.cutoff,
        open_classes.order_uuid,
        2,
        open_classes.stage,
        open_classes.stage_class,
        '',
        false,
        open_classes.hours_in_stage - open_classes.stage_class,
        1
    from open_classes

    union all

    select
        open_classes.cutoff,
        open_classes.order_uuid,
        3,
        '',
        open_classes.age_class,
        '',
        false,
        open_classes.age_hours - open_classes.age_class,
        1
    from open_classes

),

-- the curves some open order reads, numbered
curve_keys as (

    select
        *,
        row_number() over (order by cutoff, comparison, stage, class_start, kind, is_saturated) as curve
    from (select distinct cutoff, comparison, stage, class_start, kind, is_saturated from points) as wanted

),

-- Kaplan-Meier: the share not yet completed t hours after the class start, each time one
-- completes: the product of (1 - completions / orders still observed) up to t
at_each_time as (

    select
        curve_keys.curve,
        comparable.t,
        count(case when comparable.completed then 1 end) as completions,
        count(case when comparable.is_finished and not comparable.completed then 1 end) as ended_otherwise,
        count(*) as leaving
    from comparable
    inner join curve_keys
        on comparable.cutoff = curve_keys.cutoff
        and comparable.comparison = curve_keys.comparison
        and comparable.stage = curve_keys.stage
        and comparable.class_start = curve_keys.class_start
        and comparable.kind = curve_keys.kind
        and comparable.is_saturated = curve_keys.is_saturated
    group by curve_keys.curve, comparable.t

),

-- still observed at t: all of the curve's orders but those that left before t
at_risk as (

    select
        *,
        sum(leaving) over (partition by curve) - sum(leaving) over running + leaving as still_observed
    from at_each_time
    window running as (partition by curve order by t rows between unbounded preceding and current row)

),

curves as (

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
    window running as (partition by curve order by t rows between unbounded preceding and current row)

),

-- the points among their curves, in time order (a point before a curve's time equal to it): the
-- share not yet completed just before d (the lowest of the curve before it), and how many of
-- the curve's orders were still observed at d, and later completed or ended otherwise
at_points as (

    select
        cutoff,
        order_uuid,
        comparison,
        curve,
        d,
        itself,
        coalesce(min(not_yet_completed) over before, 1.0) as waiting_at_d,
        sum(leaving) over whole - sum(leaving) over before as still_observed,
        sum(completions) over whole - sum(completions) over before as completions_later,
        sum(ended_otherwise) over whole - sum(ended_otherwise) over before as ended_otherwise_later
    from (
        select
            curve, t, 1 as is_curve, not_yet_completed, leaving, completions, ended_otherwise,
            cast(null as timestamp) as cutoff, cast(null as {{ dbt.type_string() }}) as order_uuid,
            cast(null as integer) as comparison, cast(null as {{ type_double() }}) as d, 0 as itself
        from curves

        union all

        select
            curve_keys.curve, points.d, 0, null, 0, 0, 0,
            points.cutoff, points.order_uuid, points.comparison, points.d, points.itself
        from points
        inner join curve_keys
            on points.cutoff = curve_keys.cutoff
            and points.comparison = curve_keys.comparison
            and points.stage = curve_keys.stage
            and points.class_start = curve_keys.class_start
            and points.kind = curve_keys.kind
            and points.is_saturated = curve_keys.is_saturated
    ) as together
    window
        whole as (partition by curve),
        before as (partition by curve order by t, is_curve rows between unbounded preceding and current row)

),

-- p50 (p90): the first completion after which the share not yet completed, given the order had
-- not completed by d, is 1/2 (1/10) or less: not_yet_completed <= share x waiting_at_d. Points
-- among the curve's completions in order of that share (a point after a curve's equal share)
targets as (

    select
        cutoff,
        order_uuid,
        comparison,
        share,
        d,
        min(t) over (partition by curve order by level, is_point rows between unbounded preceding and current row)
            as t
    from (
        select
            curve, not_yet_completed as level, 0 as is_point, t,
            cast(null as timestamp) as cutoff, cast(null as {{ dbt.type_string() }}) as order_uuid,
            cast(null as integer) as comparison, cast(null as {{ type_double() }}) as share,
            cast(null as {{ type_double() }}) as d
        from curves
        where completions > 0

        union all

        -- (a hair above: the product of logarithms lands on 0.5000000001 where the count says 1/2)
        select
            at_points.curve, shares.share * at_points.waiting_at_d + 1e-9, 1, null,
            at_points.cutoff, at_points.order_uuid, at_points.comparison, shares.share, at_points.d
        from at_points
        cross join (select 0.5 as share union all select 0.1) as shares
        where at_points.order_uuid is not null and at_points.completions_later > 0
    ) as together

),

quantiles as (

    select
        cutoff,
        order_uuid,
        comparison,
        -- (t >= d always holds when waiting_at_d > 0; a guard for the curve that fell to 0 before)
        max(case when share = 0.5 and t >= d then t - d end) as p50_remaining_hours,
        max(case when share = 0.1 and t >= d then t - d end) as p90_remaining_hours
    from targets
    where order_uuid is not null
    group by cutoff, order_uuid, comparison

),

by_comparison as (

    select
        cutoff,
        order_uuid,
        comparison,
        -- (sums of counts: a wider integer on DuckDB and PostgreSQL than the count they add up)
        cast(still_observed - itself as {{ dbt.type_bigint() }}) as comparable_orders,
        cast(completions_later as {{ dbt.type_bigint() }}) as completed_orders,
        ended_otherwise_later as ended_otherwise,
        completions_later + ended_otherwise_later as finished_orders
    from at_points
    where order_uuid is not null and still_observed - itself > 0

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
    end as p90_completed_at,
    naive.naive_lead_time_hours
from open_then
left join picked
    on open_then.cutoff = picked.cutoff and open_then.order_uuid = picked.order_uuid and picked.preference = 1
left join quantiles
    on picked.cutoff = quantiles.cutoff and picked.order_uuid = quantiles.order_uuid
    and picked.comparison = quantiles.comparison
left join appointments on open_then.cutoff = appointments.cutoff and open_then.order_uuid = appointments.order_uuid
left join naive on open_then.cutoff = naive.cutoff
{%- endmacro %}

{#- The past cutoffs the backtest keeps: the Mondays 00:00 of the last `forecast_backtest_weeks`
    weeks that the feed is at least `forecast_settle_hours` past. -#}
{% macro backtest_cutoffs() -%}
    select
        cast(date_trunc('week', as_of.as_of - {{ var('forecast_settle_hours') }} * interval '1 hour') as timestamp)
            - (weeks.k * 7) * interval '1 day' as cutoff
    from (select max(creation_date) as as_of from {{ ref('stg_events') }}) as as_of
    cross join {{ series('0', var('forecast_backtest_weeks') - 1, 'weeks', 'k') }}
{%- endmacro %}
