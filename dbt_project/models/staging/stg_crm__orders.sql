-- Order lines collected by the end of the as-of month (loaded in or before it, dated on or before its
-- last day). A sale or a return; amounts stay positive here, the sign is the business meaning of
-- order_type (fct_orders turns returns into negative revenue). Money becomes exact decimals so that
-- sums are exact and do not depend on the order in which an engine adds them up.
--
-- A plain transaction log has no order ids: each row then gets a deterministic surrogate key, a hash of
-- (customer_id, order_date, amount, order_type, n) where n numbers identical rows, so two identical
-- transactions stay two orders and every rebuild gives the same ids.
{%- set as_of_month = build_month() %}

with

source as (

    select
        order_id,
        customer_id,
        order_date,
        product_id,
        quantity,
        amount,
        {{ optional_source_column('crm', 'orders', 'order_type', dbt.type_string()) }},
        {{ optional_source_column('crm', 'orders', 'discount_code', dbt.type_string()) }},
        {{ optional_source_column('crm', 'orders', 'discount_amount', 'double') }},
        {{ optional_source_column('crm', 'orders', 'order_source', dbt.type_string()) }},
        _loaded_month

    from {{ source('crm', 'orders') }}

),

renamed as (

    select
        cast(order_id as {{ dbt.type_string() }}) as source_order_id,
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(order_date as date) as order_date,
        cast(product_id as {{ dbt.type_string() }}) as product_id,
        cast(quantity as {{ dbt.type_bigint() }}) as quantity,
        cast(amount as decimal(18, 2)) as amount,
        coalesce(
            lower(trim(cast(order_type as {{ dbt.type_string() }}))), 'sale'
        ) as order_type,
        nullif(trim(cast(discount_code as {{ dbt.type_string() }})), '') as discount_code,
        cast(coalesce(discount_amount, 0) as decimal(18, 2)) as discount_amount,
        lower(trim(cast(order_source as {{ dbt.type_string() }}))) as order_source,
        cast(_loaded_month as date) as loaded_month

    from source

),

collected_by_month_end as (

    select * from renamed
    where
        loaded_month <= {{ as_of_month_date(as_of_month) }}
        and order_date <= {{ as_of_month_end(as_of_month) }}

),

-- Only rows that need a surrogate key are numbered, among the rows identical to them: numbering every
-- row would sort the whole order history, each time the view is read, for keys a source with order ids
-- never uses. A row is numbered among all its identical rows, with or without a source id (rows with
-- one come first within a loaded month), exactly as if every row were numbered.
without_source_id as (

    select * from collected_by_month_end
    where source_order_id is null

),

identical_to_a_row_without_source_id as (

    select * from collected_by_month_end as candidate
    where exists (
        select 1 from without_source_id
        where
            without_source_id.customer_id is not distinct from candidate.customer_id
            and without_source_id.order_date is not distinct from candidate.order_date
            and without_source_id.amount is not distinct from candidate.amount
            and without_source_id.order_type is not distinct from candidate.order_type
    )

),

numbered as (

    select
        *,
        row_number() over (
            partition by customer_id, order_date, amount, order_type
            order by loaded_month, source_order_id nulls last, product_id nulls last, quantity nulls last
        ) as duplicate_number

    from identical_to_a_row_without_source_id

),

with_surrogate_id as (

    select
        {{ dbt.concat([
            "'txn-'",
            dbt.hash(dbt.concat([
                "customer_id", "'|'",
                "cast(order_date as " ~ dbt.type_string() ~ ")", "'|'",
                "cast(amount as " ~ dbt.type_string() ~ ")", "'|'",
                "order_type", "'|'",
                "cast(duplicate_number as " ~ dbt.type_string() ~ ")"
            ]))
        ]) }} as order_id,
        true as order_id_is_surrogate,
        customer_id,
        order_date,
        order_type,
        product_id,
        quantity,
        amount,
        discount_code,
        discount_amount,
        order_source

    from numbered

    where source_order_id is null

),

with_source_id as (

    select
        source_order_id as order_id,
        false as order_id_is_surrogate,
        customer_id,
        order_date,
        order_type,
        product_id,
        quantity,
        amount,
        discount_code,
        discount_amount,
        order_source

    from collected_by_month_end

    where source_order_id is not null

),

unioned as (

    select * from with_source_id

    union all

    select * from with_surrogate_id

),

final as (

    select
        order_id,
        order_id_is_surrogate,
        customer_id,
        order_date,
        order_type,
        order_type = 'return' as is_return,
        product_id,
        quantity,
        amount,
        discount_code,
        discount_amount,
        order_source

    from unioned

)

select * from final
