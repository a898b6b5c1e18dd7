{#
    Every column rule of one table, checked in ONE scan (one dbt node, one query, one Dagster check) instead of
    one test per column and rule: each dbt test costs a node's start-up and a scan, and on a monthly asset a
    Dagster check is recorded for every month of a run.

      not_null:        [column, ...]               the column is never null
      positive:        [column, ...]               every value is > 0 (nulls fail too)
      between:         {column: [min, max]}        every value lies in [min, max] (nulls fail too)
      accepted_values: {column: [value, ...]}      every non-null value is one of these (as dbt's own test)
      starts_with:     {column: prefix_column}     the value starts with prefix_column's (nulls fail too)

    Fails with one row per broken rule: the rule in words and how many rows break it; dbt counts the rows.
#}
{% test column_rules(model, not_null=[], positive=[], between={}, accepted_values={}, starts_with={}) %}
    {{ config(fail_calc='coalesce(sum(failures), 0)') }}
    {%- set rules = [] -%}
    {%- for column in not_null -%}
        {%- do rules.append((column ~ ' is null', column ~ ' is null')) -%}
    {%- endfor -%}
    {%- for column in positive -%}
        {%- do rules.append((column ~ ' is not positive', column ~ ' is null or ' ~ column ~ ' <= 0')) -%}
    {%- endfor -%}
    {%- for column, bounds in between.items() -%}
        {%- do rules.append((
            column ~ ' is outside [' ~ bounds[0] ~ ', ' ~ bounds[1] ~ ']',
            column ~ ' is null or ' ~ column ~ ' < ' ~ bounds[0] ~ ' or ' ~ column ~ ' > ' ~ bounds[1]
        )) -%}
    {%- endfor -%}
    {%- for column, values in accepted_values.items() -%}
        {%- set quoted = [] -%}
        {%- for value in values -%}{%- do quoted.append("'" ~ value ~ "'") -%}{%- endfor -%}
        {%- do rules.append((
            column ~ ' is not an accepted value',
            column ~ ' is not null and ' ~ column ~ ' not in (' ~ quoted | join(', ') ~ ')'
        )) -%}
    {%- endfor -%}
    {%- for column, prefix in starts_with.items() -%}
        {%- do rules.append((
            column ~ ' does not start with ' ~ prefix,
            column ~ ' is null or ' ~ prefix ~ ' is null or substr(' ~ column ~ ', 1, length(' ~ prefix ~ ')) <> '
                ~ prefix
        )) -%}
    {%- endfor -%}
    {%- if not rules -%}
        {{ exceptions.raise_compiler_error("column_rules on " ~ model ~ " names no rule") }}
    {%- endif %}
with broken as (
    select
    {%- for _, violated in rules %}
        sum(case when {{ violated }} then 1 else 0 end) as rule_{{ loop.index }}{% if not loop.last %},{% endif %}
    {%- endfor %}
    from {{ model }}
)
{% for description, _ in rules %}
select '{{ description }}' as rule, rule_{{ loop.index }} as failures from broken where rule_{{ loop.index }} > 0
{% if not loop.last %}union all{% endif %}
{%- endfor %}
{% endtest %}
