{#
    Write, audit, publish: gold's tables and silver's row history are built into a staged relation beside the
    published one (`<name>__auditado`), tested there, and published only when every test of theirs passed.

    - The materializations `delitos_audited_table` and `delitos_audited_incremental` build the staged relation
      (the incremental one starts from a copy of the published table and appends the model's new rows). The
      published relation is not touched.
    - `delitos_audited_window` (silver's monthly model) builds only the run's window: its new rows go to a table of
      their own (`<name>__ventana`), and the staged relation is a VIEW of the table as it will be once published
      (the published rows outside the window whose keys do not come back, and the new rows), so that its tests
      and the tables built from it see exactly what will be published, without copying the whole table.
      Publication replaces the window (macros/window_swap.sql); on a first build there is nothing to replace and
      the staged relation is a table, published as an audited table is.
    - `ref()` (overridden below) points, during an invocation that built a model, at that model's staged relation:
      its tests and the tables built from it read what was just built, not what is published. A view over them
      (`delitos_audited_view`) is created at publication instead, over the published names.
    - dbt's `build` order tests each model before anything downstream of it is built; a failed test skips them.
    - `on-run-end` (`delitos_publish_audited`) swaps in every staged relation whose model succeeded and whose every
      test passed (all of them in ONE transaction: DuckDB renames, Snowflake deletes and inserts; a window model's
      window is replaced in the same transaction on both),
      and drops the others: a failed test leaves the previous table published. Then it (re)creates the audited
      views whose audited models were all published; a view over a kept model stays as it was.
#}

{% macro delitos_staged_suffix() %}__auditado{% endmacro %}

{% macro delitos_audited_materializations() %}
    {{ return(['delitos_audited_table', 'delitos_audited_incremental', 'delitos_audited_window']) }}
{% endmacro %}

{% macro delitos_staged(relation) %}
    {{ return(relation.incorporate(path={'identifier': relation.identifier ~ delitos_staged_suffix()})) }}
{% endmacro %}

{#- Where an audited window model keeps the run's new rows until they are published. -#}
{% macro delitos_window_rows(relation) %}
    {{ return(relation.incorporate(path={'identifier': relation.identifier ~ '__ventana'}, type='table')) }}
{% endmacro %}

{#- Drop a relation under this name, whatever it is now (a staged relation is a view or a table). -#}
{% macro delitos_drop_existing(relation) %}
    {%- set existing = adapter.get_relation(database=relation.database, schema=relation.schema,
                                            identifier=relation.identifier) -%}
    {%- if existing is not none -%}
        {% do adapter.drop_relation(existing) %}
    {%- endif -%}
{% endmacro %}

{#- The node of an audited model this invocation builds, by package and name; none for any other. -#}
{% macro delitos_audited_node(package, name) %}
    {%- set node = graph.nodes.get('model.' ~ package ~ '.' ~ name) -%}
    {%- if node is not none and node.config.materialized in delitos_audited_materializations()
           and node.unique_id in selected_resources -%}
        {{ return(node) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}

{% macro ref() %}
    {%- set relation = builtins.ref(*varargs, **kwargs) -%}
    {%- set materialized = model.get('config', {}).get('materialized') if model is mapping else none -%}
    {%- if not execute or materialized is none or materialized in ['view', 'delitos_audited_view'] -%}
        {{ return(relation) }}
    {%- endif -%}
    {%- set name = varargs[-1] if varargs else kwargs.get('name') -%}
    {%- set package = varargs[0] if varargs | length > 1 else project_name -%}
    {%- set node = delitos_audited_node(package, name) -%}
    {%- if node is not none and model.get('unique_id') != node.unique_id -%}
        {{ return(delitos_staged(relation)) }}
    {%- endif -%}
    {{ return(relation) }}
{% endmacro %}

{#- is_incremental() for the audited incremental materialization too (dbt's own checks for 'incremental'). -#}
{% macro is_incremental() %}
    {% if not execute %}
        {{ return(False) }}
    {% endif %}
    {% set relation = adapter.get_relation(this.database, this.schema, this.table) %}
    {{ return(relation is not none and relation.type == 'table'
              and model.config.materialized in ['incremental', 'delitos_audited_incremental', 'delitos_audited_window']
              and not should_full_refresh()) }}
{% endmacro %}

{% materialization delitos_audited_table, default %}
    {%- set target = this.incorporate(type='table') -%}
    {%- set staged = delitos_staged(target) -%}
    {{ run_hooks(pre_hooks) }}
    {% do adapter.drop_relation(staged) %}
    {% call statement('main') -%}
        {{ get_create_table_as_sql(False, staged, sql) }}
    {%- endcall %}
    {{ run_hooks(post_hooks) }}
    {% do adapter.commit() %}
    {#- The staged relation is what exists now (dbt's relation cache must not believe the published one does). -#}
    {{ return({'relations': [staged]}) }}
{% endmaterialization %}

{% materialization delitos_audited_incremental, default %}
    {%- set target = this.incorporate(type='table') -%}
    {%- set staged = delitos_staged(target) -%}
    {%- set existing = adapter.get_relation(database=target.database, schema=target.schema, identifier=target.identifier) -%}
    {{ run_hooks(pre_hooks) }}
    {% do adapter.drop_relation(staged) %}
    {% if existing is none %}
        {% call statement('main') -%}
            {{ get_create_table_as_sql(False, staged, sql) }}
        {%- endcall %}
    {% else %}
        {% call statement('copy') -%}
            {{ delitos_copy_table(existing, staged) }}
        {%- endcall %}
        {%- set columns = get_quoted_csv(adapter.get_columns_in_relation(existing) | map(attribute='name')) -%}
        {% call statement('main') -%}
            insert into {{ staged }} ({{ columns }}) select {{ columns }} from ({{ sql }}) as nuevas
        {%- endcall %}
    {% endif %}
    {{ run_hooks(post_hooks) }}
    {% do adapter.commit() %}
    {#- The staged relation is what exists now (dbt's relation cache must not believe the published one does). -#}
    {{ return({'relations': [staged]}) }}
{% endmaterialization %}

{% materialization delitos_audited_window, default %}
    {%- set target = this.incorporate(type='table') -%}
    {%- set staged = delitos_staged(target) -%}
    {%- set window_rows = delitos_window_rows(target) -%}
    {%- set existing = adapter.get_relation(database=target.database, schema=target.schema, identifier=target.identifier) -%}
    {%- set unique_key = config.get('unique_key') -%}
    {%- set window_column = (config.get('meta') or {}).get('window_column') -%}
    {{ run_hooks(pre_hooks) }}
    {% do delitos_drop_existing(staged) %}
    {% do delitos_drop_existing(window_rows) %}
    {% if existing is none or should_full_refresh() %}
        {% call statement('main') -%}
            {{ get_create_table_as_sql(False, staged, sql) }}
        {%- endcall %}
        {%- set built = staged.incorporate(type='table') -%}
    {% else %}
        {% call statement('main') -%}
            {{ get_create_table_as_sql(False, window_rows, sql) }}
        {%- endcall %}
        {%- set published = adapter.get_columns_in_relation(existing) | map(attribute='name') | list -%}
        {%- set built_columns = adapter.get_columns_in_relation(window_rows) | map(attribute='name') | list -%}
        {%- if (published | map('lower') | list) != (built_columns | map('lower') | list) -%}
            {{ exceptions.raise_compiler_error(
                this ~ "'s columns changed (published: " ~ published | join(', ') ~ "; built: "
                ~ built_columns | join(', ') ~ "): rebuild it whole with --full-refresh") }}
        {%- endif -%}
        {%- set columns = get_quoted_csv(published) -%}
        {%- set built = staged.incorporate(type='view') -%}
        {% call statement('staged_view') -%}
            create view {{ built }} as
            select {{ columns }} from {{ existing }}
            where not ({{ delitos_window_predicate(window_column) }})
                and {{ unique_key }} not in (select {{ unique_key }} from {{ window_rows }})
            union all
            select {{ columns }} from {{ window_rows }}
        {%- endcall %}
    {% endif %}
    {{ run_hooks(post_hooks) }}
    {% do adapter.commit() %}
    {#- Both are what exists now: dbt's relation cache must know them (publication looks them up). -#}
    {{ return({'relations': [built] + ([window_rows] if built.type == 'view' else [])}) }}
{% endmaterialization %}

{#- Nothing at build time: the view is created over the published tables once they are published. -#}
{% materialization delitos_audited_view, default %}
    {% call statement('main') -%}
        select 1 as created_at_publication
    {%- endcall %}
    {{ return({'relations': [this.incorporate(type='view')]}) }}
{% endmaterialization %}

{% macro delitos_copy_table(existing, staged) %}
    {{ return(adapter.dispatch('delitos_copy_table', 'delitos')(existing, staged)) }}
{% endmacro %}

{% macro default__delitos_copy_table(existing, staged) -%}
    create table {{ staged }} as select * from {{ existing }}
{%- endmacro %}

{#- Zero-copy on Snowflake. -#}
{% macro snowflake__delitos_copy_table(existing, staged) -%}
    create table {{ staged }} clone {{ existing }}
{%- endmacro %}

{#- Whether a test is one of the model's own: a generic test is the model's it is declared on (gold's
    `matches_totals` declared on a gold table also reads silver, and says nothing wrong of silver when it fails); a
    singular test is the model's of every model it reads. -#}
{% macro delitos_tests_model(test, unique_id) %}
    {%- set attached = test.attached_node if test.attached_node is defined else none -%}
    {{ return(attached == unique_id if attached else unique_id in test.depends_on.nodes) }}
{% endmacro %}

{#- The audited models of this invocation, split by their outcome: published, or kept (one of its own tests
    failed or did not run, or the model did not build). -#}
{% macro delitos_audit_outcomes(results) %}
    {% set outcomes = {'published': [], 'kept': []} %}
    {% for result in results if result.node.resource_type == 'model'
                                and result.node.config.materialized in delitos_audited_materializations() %}
        {% set tests = [] %}
        {% for other in results if other.node.resource_type == 'test'
                                   and delitos_tests_model(other.node, result.node.unique_id) %}
            {% do tests.append(other.status) %}
        {% endfor %}
        {% set passed = result.status == 'success' and (tests | reject('in', ['pass', 'warn']) | list | length) == 0 %}
        {% do outcomes['published' if passed else 'kept'].append(result.node) %}
    {% endfor %}
    {{ return(outcomes) }}
{% endmacro %}

{% macro delitos_publish_audited(results) %}
    {% if not execute or results is none %}
        {{ return('') }}
    {% endif %}
    {% set outcomes = delitos_audit_outcomes(results) %}
    {% set published, windows = [], [] %}
    {% for node in outcomes['published'] %}
        {% set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias,
                                              type='table') %}
        {% set staged = delitos_staged(relation) %}
        {% set built = adapter.get_relation(database=staged.database, schema=staged.schema,
                                            identifier=staged.identifier) %}
        {#- A window model staged as a view of silver-to-be has its window swapped in; staged as a table (its first
            build), it is published as a table is. -#}
        {% if node.config.materialized == 'delitos_audited_window' and built is not none and built.type == 'view' %}
            {% do windows.append(delitos_window_publication(node, relation)) %}
        {% else %}
            {% do published.append(relation) %}
        {% endif %}
    {% endfor %}
    {% if published or windows %}
        {% do delitos_swap_in(published, windows) %}
    {% endif %}
    {% for window in windows %}
        {% do delitos_drop_existing(delitos_staged(window['target'])) %}
        {% do delitos_drop_existing(window['rows']) %}
    {% endfor %}
    {% for node in outcomes['kept'] %}
        {% set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias,
                                              type='table') %}
        {% do delitos_drop_existing(delitos_staged(relation)) %}
        {% do delitos_drop_existing(delitos_window_rows(relation)) %}
        {{ log("delitos: " ~ node.schema ~ "/" ~ node.name ~ " kept its previous contents (not published)", info=true) }}
    {% endfor %}
    {% set kept = outcomes['kept'] | map(attribute='unique_id') | list %}
    {% for result in results if result.node.resource_type == 'model' and result.status == 'success'
                                and result.node.config.materialized == 'delitos_audited_view' %}
        {% if result.node.depends_on.nodes | select('in', kept) | list | length == 0 %}
            {% set view = api.Relation.create(database=result.node.database, schema=result.node.schema,
                                              identifier=result.node.alias, type='view') %}
            {% call statement('delitos_publish_view', auto_begin=False) -%}
                create or replace view {{ view }} as {{ result.node.compiled_code }}
            {%- endcall %}
        {% endif %}
    {% endfor %}
    {{ return('') }}
{% endmacro %}

{#- What publishing an audited window model takes: its table, its new rows, and the statements that swap them in. -#}
{% macro delitos_window_publication(node, relation) %}
    {%- set rows = delitos_window_rows(relation) -%}
    {%- set statements = delitos_window_swap_statements(
        relation, rows, node.config.unique_key, (node.config.meta or {}).get('window_column')) -%}
    {{ return({'target': relation, 'rows': rows, 'statements': statements}) }}
{% endmacro %}

{% macro delitos_swap_in(relations, windows=[]) %}
    {{ return(adapter.dispatch('delitos_swap_in', 'delitos')(relations, windows)) }}
{% endmacro %}

{#- DuckDB: every audited table replaced, and every window swapped in, in ONE transaction (a reader sees all the old
    ones or all the new). -#}
{% macro default__delitos_swap_in(relations, windows=[]) %}
    {% set statements = ['begin transaction'] %}
    {% for relation in relations %}
        {% do statements.append('drop table if exists ' ~ relation) %}
        {% do statements.append('alter table ' ~ delitos_staged(relation) ~ ' rename to ' ~ relation.identifier) %}
    {% endfor %}
    {% for window in windows %}
        {% do statements.append(window['statements']) %}
    {% endfor %}
    {% do statements.append('commit') %}
    {% call statement('delitos_publish_audited', auto_begin=False) -%}
        {{ statements | join(';\n') }}
    {%- endcall %}
{% endmacro %}

{#- Snowflake: DDL commits on its own, so the tables are published by DML in ONE transaction (delete, insert from
    the staged table: the published table keeps its definition, grants and constraints), then the staged tables are
    dropped. A table seen for the first time, or whose columns changed with its contract, is created from its
    staged table instead (zero-copy clone). -#}
{% macro snowflake__delitos_swap_in(relations, windows=[]) %}
    {% set dml = [] %}
    {% for window in windows %}
        {% do dml.append(window['statements']) %}
    {% endfor %}
    {% for relation in relations %}
        {% set staged = delitos_staged(relation) %}
        {% set columns = adapter.get_columns_in_relation(staged) | map(attribute='name') | list %}
        {% set existing = adapter.get_relation(database=relation.database, schema=relation.schema,
                                               identifier=relation.identifier) %}
        {% if existing is not none and (adapter.get_columns_in_relation(existing) | map(attribute='name') | list) == columns %}
            {% set names = get_quoted_csv(columns) %}
            {% do dml.append('delete from ' ~ relation) %}
            {% do dml.append('insert into ' ~ relation ~ ' (' ~ names ~ ') select ' ~ names ~ ' from ' ~ staged) %}
        {% else %}
            {% do adapter.drop_relation(relation) %}
            {% call statement('delitos_publish_audited', auto_begin=False) -%}
                create table {{ relation }} clone {{ staged }}
            {%- endcall %}
        {% endif %}
    {% endfor %}
    {% if dml %}
        {% call statement('delitos_publish_audited', auto_begin=False) -%}
            {{ snowflake_dml_explicit_transaction(dml | join(';\n')) }}
        {%- endcall %}
    {% endif %}
    {% for relation in relations %}
        {% do adapter.drop_relation(delitos_staged(relation)) %}
    {% endfor %}
{% endmacro %}
