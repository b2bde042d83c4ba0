//! ARNs of the resources Palisade manages: `arn:aws:iot:{region}:{account}:{type}/{id}`.

use crate::Scope;

pub fn mitigation_action(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:mitigationaction/{name}",
        scope.region, scope.account_id
    )
}

/// A parsed IoT resource ARN.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceArn<'a> {
    pub region: &'a str,
    pub account_id: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
}

impl<'a> ResourceArn<'a> {
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(_partition),
            Some("iot"),
            Some(region),
            Some(account_id),
            Some(rest),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        let (resource_type, resource_id) = rest.split_once('/')?;
        Some(Self {
            region,
            account_id,
            resource_type,
            resource_id,
        })
    }

    pub fn belongs_to(&self, scope: &Scope) -> bool {
        self.region == scope.region && self.account_id == scope.account_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mitigation_action_arn() {
        let a =
            ResourceArn::parse("arn:aws:iot:us-east-1:123456789012:mitigationaction/x-1").unwrap();
        assert_eq!(a.resource_type, "mitigationaction");
        assert_eq!(a.resource_id, "x-1");
        assert_eq!(a.account_id, "123456789012");
        assert!(ResourceArn::parse("arn:aws:s3:::bucket").is_none());
        assert!(ResourceArn::parse("nonsense").is_none());
    }
}
