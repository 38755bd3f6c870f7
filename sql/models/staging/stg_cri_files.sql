-- The files of each intervention report (CRI) event, one row per file: `data` maps file labels to
-- links. Links were stored without their expiring token (see the extraction), so they identify
-- the file but do not download it: the CRI archive does that.

{{ config(
    materialized=covage.by_changed_key(),
    incremental_strategy='replace_changed',
    changed_column='event_uuid',
    changed_kind='event',
) }}
-- depends_on: {{ ref('int_changed_keys') }}

with

reports as (

    select event_uuid, object_uuid, business_time, creation_date, data
    from {{ ref('stg_events') }}
    where is_report and {{ covage.if_changed('event_uuid', 'event') }}

),

files as (

    select
        reports.event_uuid,
        reports.object_uuid as order_uuid,
        reports.business_time,
        reports.creation_date,
        cri_file.key as file_label,
        {{ json_scalar_text('cri_file.value') }} as file_url
    from reports,
        {{ json_each('reports.data', 'cri_file') }}

)

select * from files
