{#
    A test configured with `where: "__delitos_window__"` checks the run's window only: the placeholder becomes the
    window's predicate on `mes` when the test executes (dbt renders a test's `where` when it parses, before the
    window is known). Silver's row-level tests are configured so (dbt_project.yml): each one is then true of every
    month of the run's window, which Dagster records as a partitioned check, one evaluation per month. Tests of the
    whole table (uniqueness across months) set `where: "1 = 1"` and stay unpartitioned. Without a window (a plain
    `dbt build`) the predicate is `1 = 1`: every row is checked.

    dbt's own get_where_subquery, with the placeholder replaced.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where -%}
        {%- if where == '__delitos_window__' -%}
            {%- set where = delitos_window_predicate('mes') -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
