{#
    The few places where DuckDB and Snowflake SQL differ. Everything else in the models is
    written in SQL both accept (date_trunc, extract, window functions, recursive CTEs).
#}

{#- The first capture group of a regular expression, null when it does not match. -#}
{% macro regexp_group(expression, pattern) %}
    {{ return(adapter.dispatch('regexp_group', 'delitos')(expression, pattern)) }}
{% endmacro %}

{% macro default__regexp_group(expression, pattern) -%}
    nullif(regexp_extract({{ expression }}, '{{ pattern }}', 1), '')
{%- endmacro %}

{% macro snowflake__regexp_group(expression, pattern) -%}
    {#- 'e' extracts a sub-match; group 1. -#}
    regexp_substr({{ expression }}, '{{ pattern }}', 1, 1, 'e', 1)
{%- endmacro %}

{#- One month after a date, as a date (DuckDB's date + interval is a timestamp). -#}
{% macro add_months(expression, months) %}
    {{ return(adapter.dispatch('add_months', 'delitos')(expression, months)) }}
{% endmacro %}

{% macro default__add_months(expression, months) -%}
    cast({{ dbt.dateadd('month', months, expression) }} as date)
{%- endmacro %}
