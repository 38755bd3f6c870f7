{#- Incremental builds: a tick recomputes only the orders, services and events its new loads
    touched, and every model stays equal to a full refresh.

    stg_events reads the loads it has not seen (its own _dlt_load_id). Every other incremental
    model recomputes the keys that int_changed_keys lists: the events loaded after the
    *propagated* load, and every object and service any version of them named. The propagated
    load is advanced at the end of an invocation (on-run-end) only when int_changed_keys and
    every model that reads it were built in it: a run killed or failed midway, or a selection of
    a few models, leaves it where it was, and the next run recomputes those keys again (a key
    recomputed twice comes out the same). The state lives in a table of its own,
    `covage_build_state` in the intermediate schema; a full refresh starts it over. -#}

{% macro build_state() -%}
    {{ return(api.Relation.create(
        database=target.database, schema=generate_schema_name('intermediate', none), identifier='covage_build_state'
    )) }}
{%- endmacro %}

{#- on-run-start: the state table exists before any model reads it. -#}
{% macro prepare_build_state() -%}
    {%- if execute and not covage.is_lake() -%}
        {%- set state = covage.build_state() -%}
        {%- do run_query('create schema if not exists ' ~ adapter.quote(state.schema)) -%}
        {%- do run_query('create table if not exists ' ~ state
            ~ ' (name varchar primary key, load_id varchar not null, recorded_at timestamp not null)') -%}
    {%- endif -%}
{%- endmacro %}

{#- The value of one entry of the state, '' if none. -#}
{% macro build_state_value(name) -%}
    {%- if not execute or covage.is_lake() -%}{{ return('') }}{%- endif -%}
    {%- set rows = run_query("select load_id from " ~ covage.build_state() ~ " where name = '" ~ name ~ "'") -%}
    {{ return(rows.columns[0].values()[0] if rows.rows | length else '') }}
{%- endmacro %}

{% macro set_build_state(name, value_sql) -%}
    delete from {{ covage.build_state() }} where name = '{{ name }}';
    insert into {{ covage.build_state() }} (name, load_id, recorded_at)
    select '{{ name }}', coalesce(({{ value_sql }}), ''), current_timestamp
{%- endmacro %}

{#- The load after which int_changed_keys lists the changes: the propagated one; none on a full
    refresh (every model is rebuilt: everything changed). -#}
{% macro changed_since() -%}
    {{ return('' if flags.FULL_REFRESH else covage.build_state_value('propagated')) }}
{%- endmacro %}

{#- int_changed_keys' post-hook, in its transaction: the loads it covers (the propagated one,
    excluded, to the newest one in stg_events). The analysts' copy reads them. -#}
{% macro record_changed_keys() -%}
    {%- if not covage.is_lake() -%}
    {{ covage.set_build_state('changed_keys_since', "select '" ~ covage.changed_since() ~ "'") }};
    {{ covage.set_build_state('changed_keys_until', 'select max(_dlt_load_id) from ' ~ ref('stg_events')) }}
    {%- endif -%}
{%- endmacro %}

{#- The models whose rows are recomputed by changed key: they read int_changed_keys. -#}
{% macro changed_key_models() -%}
    {%- set found = [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model' and 'model.covage.int_changed_keys' in node.depends_on.nodes -%}
            {%- do found.append(node.unique_id) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}

{#- on-run-end: the loads int_changed_keys listed are propagated once it and every model that
    reads it were built in this invocation. -#}
{% macro record_propagation(results) -%}
    {%- if execute and not covage.is_lake() -%}
        {%- set built = [] -%}
        {%- for result in results -%}
            {%- if result.status == 'success' -%}{%- do built.append(result.node.unique_id) -%}{%- endif -%}
        {%- endfor -%}
        {%- set required = ['model.covage.int_changed_keys'] + covage.changed_key_models() -%}
        {%- if required | reject('in', built) | list | length == 0 -%}
            {%- call statement('record_propagation') -%}
                {{ covage.set_build_state('propagated', "select load_id from " ~ covage.build_state()
                    ~ " where name = 'changed_keys_until'") }}
            {%- endcall -%}
            {%- do adapter.commit() -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- The keys of one kind (event, object, service) that this build recomputes. -#}
{% macro changed_keys(kind) -%}
    select changed_key from {{ covage.changed_keys_relation() }} where key_kind = '{{ kind }}'
{%- endmacro %}

{#- int_changed_keys, found in the graph rather than by ref(): the tests read it too, and a test
    may only ref() what it tests. The models that read it declare it (`-- depends_on:`). -#}
{% macro changed_keys_relation() -%}
    {%- set node = graph.nodes['model.covage.int_changed_keys'] -%}
    {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)) }}
{%- endmacro %}

{#- A filter for an incremental model's own SQL: `column` among the changed keys of `kind` on an
    incremental run, always true otherwise. -#}
{% macro if_changed(column, kind) -%}
    {%- if is_incremental() -%}{{ column }} in ({{ covage.changed_keys(kind) }}){%- else -%}true{%- endif -%}
{%- endmacro %}

{#- The incremental strategy of those models: every row of a changed key is deleted, then the
    rows recomputed for those keys inserted. dbt's delete+insert deletes only the keys present
    in the new rows, so a row whose source went away (a payload corrected to list fewer files, an
    event corrected to another type) would stay for ever. Configured by `changed_column` (the
    column holding the key) and `changed_kind` (event, object or service). -#}
{% macro get_incremental_replace_changed_sql(arg_dict) -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ arg_dict['target_relation'] }}
    where {{ config.require('changed_column') }} in ({{ covage.changed_keys(config.require('changed_kind')) }});
    insert into {{ arg_dict['target_relation'] }} ({{ columns }})
    select {{ columns }} from {{ arg_dict['temp_relation'] }}
{%- endmacro %}

{#- The materialization of a model recomputed by changed key: incremental where the warehouse can
    delete rows, a table rebuilt whole on a lake of Parquet files (which cannot). -#}
{% macro by_changed_key() -%}
    {{ return('table' if covage.is_lake() else 'incremental') }}
{%- endmacro %}

{#- dbt's where-subquery, which every generic test reads its model through: on an incremental
    build, the tests of the models built incrementally check the rows of the keys this build
    recomputed, and the tests of the raw events and stg_events the events loaded since the
    propagated load (with every other row of their event_uuid, so a duplicate of an old row is
    still found). The rest did not change since their tests passed; a full refresh (the nightly
    build) tests every row. Any `where` a test sets still applies. -#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set changed = covage.changed_rows_filter(relation) if execute and not flags.FULL_REFRESH else '' -%}
    {%- set conditions = [where, changed] | select | list -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where (' ~ conditions | join(') and (') ~ ')) dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}

{% macro changed_rows_filter(relation) -%}
    {%- if covage.is_lake() -%}{{ return('') }}{%- endif -%}
    {%- set tested = covage.tested_node(relation) -%}
    {%- if tested is none -%}{{ return('') }}{%- endif -%}
    {%- set config = tested.config -%}
    {%- if tested.resource_type == 'source' and tested.name == 'events'
        or tested.resource_type == 'model' and tested.name == 'stg_events' -%}
        {%- set since = covage.build_state_value('propagated') if covage.build_state_exists() else '' -%}
        {{ return("event_uuid in (select event_uuid from " ~ relation ~ " where _dlt_load_id > '" ~ since ~ "')") }}
    {%- endif -%}
    {%- if tested.resource_type != 'model' or not covage.changed_keys_exist() -%}{{ return('') }}{%- endif -%}
    {%- if config.get('incremental_strategy') == 'replace_changed' -%}
        {{ return(config.get('changed_column') ~ ' in (' ~ covage.changed_keys(config.get('changed_kind')) ~ ')') }}
    {%- elif tested.name == 'stg_event_versions' -%}
        {{ return('event_uuid in (' ~ covage.changed_keys('event') ~ ')') }}
    {%- elif tested.name == 'object_history' -%}
        {{ return('object_uuid in (' ~ covage.changed_keys('object') ~ ')') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- The model or source a test reads `relation` of (the one it is attached to), or none. -#}
{% macro tested_node(relation) -%}
    {%- set found = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
    {%- if found is none -%}
        {%- for unique_id in model.depends_on.nodes if unique_id.startswith('source.') -%}
            {%- set found = graph.sources[unique_id] -%}
            {%- if found.identifier == relation.identifier -%}{{ return(found) }}{%- endif -%}
        {%- endfor -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(found if found.alias == relation.identifier and found.schema == relation.schema else none) }}
{%- endmacro %}

{% macro build_state_exists() -%}
    {%- set state = covage.build_state() -%}
    {{ return(adapter.get_relation(database=state.database, schema=state.schema, identifier=state.identifier) is not none) }}
{%- endmacro %}

{% macro changed_keys_exist() -%}
    {%- set keys = covage.changed_keys_relation() -%}
    {{ return(adapter.get_relation(database=keys.database, schema=keys.schema, identifier=keys.identifier) is not none) }}
{%- endmacro %}
