-- One row per customer as of the end of the as-of month: each customer's row from the latest
-- snapshot delivered at or before the month end. PII stays here: name, e-mail and phone are reduced
-- to a hash and presence flags.
{%- set as_of_month = build_month() %}

with

source as (

    select * from {{ source('crm', 'customers') }}

),

delivered_by_month_end as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by _loaded_month desc
        ) as snapshot_recency

    from source

    where _loaded_month <= {{ as_of_month_end(as_of_month) }}

),

renamed as (

    select
        cast(customer_id as {{ dbt.type_string() }}) as customer_id,
        cast(signup_date as date) as signup_date,
        cast(email_consent as {{ dbt.type_boolean() }}) as email_consent,
        case
            when nullif(trim(email), '') is not null
                then {{ hash_sha256('lower(trim(email))') }}
        end as email_hash,
        nullif(trim(email), '') is not null as has_email,
        nullif(trim(phone), '') is not null as has_phone

    from delivered_by_month_end

    where snapshot_recency = 1

),

final as (

    select * from renamed
    where signup_date is null or signup_date <= {{ as_of_month_end(as_of_month) }}

)

select * from final
