{#
    The run's window: dbt vars `window_start` and `window_end`, ISO dates (YYYY-MM-DD), a half-open
    interval [window_start, window_end) on fecha_hecho. Both unset means no window: everything.

    Dagster passes the window in the environment instead (DELITOS_DBT_WINDOW_START / _END), read only at
    execution time: a window in --vars changes dbt's parse inputs and costs a full re-parse every run, an
    environment variable read while executing does not.
#}

{#- Returns none (no window) or a dict {start, end} of validated ISO date strings. -#}
{% macro delitos_window() %}
    {%- set start = var('window_start', none) -%}
    {%- set end = var('window_end', none) -%}
    {%- if execute and start in (none, '') and end in (none, '') -%}
        {%- set start = env_var('DELITOS_DBT_WINDOW_START', '') -%}
        {%- set end = env_var('DELITOS_DBT_WINDOW_END', '') -%}
    {%- endif -%}
    {%- if start in (none, '') and end in (none, '') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if start in (none, '') or end in (none, '') -%}
        {{ exceptions.raise_compiler_error(
            "Pass both window_start and window_end (or neither), got window_start="
            ~ start ~ ", window_end=" ~ end) }}
    {%- endif -%}
    {#- Parsing both as dates also guarantees that only a date literal ever reaches the SQL. -#}
    {%- set parsed = [] -%}
    {%- for value in [start, end] -%}
        {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}$', value | string) -%}
            {{ exceptions.raise_compiler_error("Window bounds must be ISO dates (YYYY-MM-DD), got " ~ value) }}
        {%- endif -%}
        {%- do parsed.append(modules.datetime.date.fromisoformat(value | string)) -%}
    {%- endfor -%}
    {%- if parsed[0] >= parsed[1] -%}
        {{ exceptions.raise_compiler_error("Empty window [" ~ start ~ ", " ~ end ~ ")") }}
    {%- endif -%}
    {{ return({'start': parsed[0].isoformat(), 'end': parsed[1].isoformat()}) }}
{% endmacro %}

{#- A SQL predicate selecting the window's rows on a date column; `true` when there is no window. -#}
{% macro delitos_window_predicate(column) %}
    {%- set window = delitos_window() -%}
    {%- if window is none -%}
        1 = 1
    {%- else -%}
        {{ column }} >= cast('{{ window.start }}' as date) and {{ column }} < cast('{{ window.end }}' as date)
    {%- endif -%}
{% endmacro %}
