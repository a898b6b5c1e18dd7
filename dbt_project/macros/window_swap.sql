{#
    Replace a model's window in ONE transaction: delete from the target every row of the window (the model's
    `meta.window_column` inside [window_start, window_end); every row when there is no window) and every row whose
    unique key comes back in the new rows (a row whose date moved into the window from another month), then insert
    the new rows. Rows deleted upstream therefore disappear, and a failure anywhere between the delete and the
    insert leaves the table as it was.

    Used to publish an audited window model (`delitos_audited_window`, macros/audit_publish.sql): the new rows were
    built and tested beforehand, so only the publication itself is left to protect (a suspended warehouse, a
    timeout, a constraint, a killed run).
#}

{#- The delete and the insert, separated by a semicolon, without a trailing one. The source's columns are the
    target's, in the same order (`delitos_audited_window` refuses a build whose columns differ): read from neither, as
    a query for them would open a transaction before the publication's own. -#}
{% macro delitos_window_swap_statements(target, source, unique_key, window_column) %}
    {%- if unique_key is none or unique_key is not string or window_column is none -%}
        {{ exceptions.raise_compiler_error(
            "a window model needs one column as unique_key and meta.window_column, got unique_key="
            ~ unique_key ~ ", window_column=" ~ window_column) }}
    {%- endif -%}
    delete from {{ target }}
    where ({{ delitos_window_predicate(window_column) }})
        or {{ unique_key }} in (select {{ unique_key }} from {{ source }});
    insert into {{ target }}
    select * from {{ source }}
{%- endmacro %}
