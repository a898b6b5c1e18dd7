{#
    Incremental strategy `delitos_window_swap`: replace the run's window of a model in ONE transaction.

    It deletes from the target every row of the window (the model's `meta.window_column` inside
    [window_start, window_end); every row when there is no window) and every row whose unique_key
    comes back in the new rows (a row whose date moved into the window from another month), then
    inserts the new rows. Rows deleted upstream therefore disappear, and a failure anywhere between
    the delete and the insert leaves the table as it was: a gold rebuild never sees a window emptied
    by a failed run.

    The model's select has already been staged into dbt's temporary relation (`temp_relation`)
    before this SQL runs, so a failing select never reaches the delete; what is left to protect is
    the insert (a suspended warehouse, a timeout, a constraint, a killed run).
#}
{% macro get_incremental_delitos_window_swap_sql(arg_dict) %}
    {{ return(adapter.dispatch('get_incremental_delitos_window_swap_sql', 'delitos')(arg_dict)) }}
{% endmacro %}

{#- dbt-duckdb (and any adapter that runs the model's SQL inside dbt's own transaction): the
    materialization has already opened the transaction and commits it after this SQL, so a BEGIN
    here would be a nested transaction, which DuckDB refuses. -#}
{% macro default__get_incremental_delitos_window_swap_sql(arg_dict) %}
    {{ return(delitos_window_swap_statements(arg_dict)) }}
{% endmacro %}

{#- dbt-snowflake runs with autocommit and without a transaction of its own: each statement would
    commit alone, so the swap brings its own begin/commit (as dbt-snowflake's delete+insert does). -#}
{% macro snowflake__get_incremental_delitos_window_swap_sql(arg_dict) %}
    {{ return(snowflake_dml_explicit_transaction(delitos_window_swap_statements(arg_dict))) }}
{% endmacro %}

{#- The delete and the insert, separated by a semicolon, without a trailing one. -#}
{% macro delitos_window_swap_statements(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set window_column = (config.get('meta') or {}).get('window_column') -%}
    {%- if unique_key is none or unique_key is not string or window_column is none -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy 'delitos_window_swap' needs one column as unique_key and meta.window_column,"
            ~ " got unique_key=" ~ unique_key ~ ", window_column=" ~ window_column) }}
    {%- endif -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    where ({{ delitos_window_predicate(window_column) }})
        or {{ unique_key }} in (select {{ unique_key }} from {{ source }});
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}
