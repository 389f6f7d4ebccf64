# ruff: noqa: E501  (one passage a line reads best)
"""Question/passage pairs for bench/embedders.py, written for it: FAQ-like questions, each with
the one passage that answers it, plus passages on nearby topics that answer none of them.
Questions are paraphrases, not copies of the passage's words, so word overlap alone is not
enough."""

EN_PAIRS = [
    (
        "How long do I have to send an item back?",
        "Returns are accepted within 30 days of delivery, provided the product is unused and in its original packaging.",
    ),
    (
        "When will my refund arrive?",
        "Once the returned parcel reaches our warehouse, the money is credited to your original payment method within five to seven business days.",
    ),
    (
        "Can I change the delivery address after ordering?",
        "An order's shipping address can be edited from the order page until the parcel has been handed to the courier.",
    ),
    (
        "Do you ship to other countries?",
        "We deliver to the EU, the United Kingdom, Canada and Japan; international shipments take between six and twelve days.",
    ),
    (
        "What does express delivery cost?",
        "Next-day express shipping is charged at 12 dollars per order, and is free on orders above 150 dollars.",
    ),
    (
        "How do I reset my password?",
        "To choose a new password, click 'Forgot password' on the sign-in page and follow the link we e-mail you; it expires after one hour.",
    ),
    (
        "Why was my card declined?",
        "Payments usually fail because the billing address does not match the card, the card has expired, or the bank blocked an online purchase.",
    ),
    (
        "Is there a warranty on the coffee machine?",
        "Every espresso maker comes with a two-year manufacturer guarantee covering defects in the pump, heater and electronics.",
    ),
    (
        "How often should I descale the machine?",
        "Limescale builds up in the boiler; run the descaling program every three months, or monthly if your tap water is hard.",
    ),
    (
        "How many vacation days do employees get?",
        "Full-time staff are entitled to 25 days of paid annual leave, plus public holidays; part-time staff receive a pro-rata share.",
    ),
    (
        "Who do I tell when I am sick?",
        "If you are ill, inform your line manager before 9 a.m. on the first day of absence; a doctor's note is required after three days.",
    ),
    (
        "Can I work from home?",
        "Employees may work remotely up to three days a week, agreed in advance with their team lead.",
    ),
    (
        "How are travel expenses paid back?",
        "Submit receipts for business trips in the expense tool within 30 days; approved claims are reimbursed with the next monthly salary.",
    ),
    (
        "What is the notice period if I resign?",
        "After the probation period, either side must give one month's written notice to end the employment contract.",
    ),
    (
        "How do I connect to the office Wi-Fi?",
        "Choose the network CorpNet and sign in with your company user name and password; guests use the separate Guest network.",
    ),
    (
        "The printer is jammed, what should I do?",
        "Open the front cover, gently pull out any stuck sheet, close the cover and press resume; call IT if the paper tray light keeps blinking.",
    ),
    (
        "How do I get access to the VPN?",
        "Remote network access requires installing the approved client and requesting a VPN account through the IT service portal.",
    ),
    (
        "What should I do if I get a suspicious e-mail?",
        "Do not click links or open attachments in a phishing message; forward it to security@example.com and delete it.",
    ),
    (
        "How long is the battery life of the headphones?",
        "The wireless headset plays music for up to 30 hours on one charge, and ten minutes of charging give three hours of listening.",
    ),
    (
        "Are the headphones waterproof?",
        "The earbuds are rated IPX4: they withstand sweat and splashes but must not be submerged in water.",
    ),
    (
        "How do I pair the speaker with my phone?",
        "Hold the Bluetooth button for three seconds until the light flashes blue, then pick the speaker in your phone's Bluetooth list.",
    ),
    (
        "Where can I find my invoice?",
        "Invoices can be downloaded as PDF files from the 'My orders' section of your account once the order has shipped.",
    ),
    (
        "Can I pay in instalments?",
        "At checkout you can split purchases over 100 dollars into three interest-free monthly payments.",
    ),
    (
        "Do you have a loyalty program?",
        "Members earn one point per dollar spent; 500 points can be redeemed for a 10 dollar voucher.",
    ),
    (
        "How do I cancel my subscription?",
        "You can end your plan at any time under Account > Subscription; access continues until the end of the current billing period.",
    ),
    (
        "Is my personal data shared with third parties?",
        "We never sell customer information; it is only passed to the payment processor and the courier as needed to fulfil an order.",
    ),
    (
        "What are your customer service hours?",
        "Our support team answers phone calls and chat from 8 a.m. to 8 p.m., Monday to Saturday.",
    ),
    (
        "The product arrived broken, what now?",
        "If goods are damaged in transit, send us photos of the item and the box within 48 hours and we will ship a replacement at no cost.",
    ),
    (
        "How do I update the firmware of the router?",
        "Log into the router's web interface, open System > Update and upload the latest firmware file from our support site; do not switch it off while updating.",
    ),
    (
        "What is the minimum age to open an account?",
        "Customers must be at least 18 years old to register; younger users need a parent to hold the account.",
    ),
]

EN_DISTRACTORS = [
    "Our company was founded in 1998 in a small garage and now employs over 2,000 people worldwide.",
    "Gift cards are printed on recycled paper and come in a choice of four designs.",
    "The espresso maker's drip tray is dishwasher safe; the water tank should be rinsed by hand.",
    "The annual staff party takes place in December; employees may bring one guest.",
    "Parking spaces in the company garage are allocated by lottery every January.",
    "The headphones are available in black, white and midnight blue.",
    "Our newsletter is sent every Thursday with new arrivals and seasonal offers.",
    "The canteen serves a vegetarian dish every day and a vegan option on Fridays.",
    "Meeting rooms on the third floor can be booked through the calendar for up to four hours.",
    "The router supports both 2.4 GHz and 5 GHz bands and up to 64 connected devices.",
    "Product reviews are moderated and appear on the site within two days.",
    "Our warehouse in Rotterdam handles about 20,000 parcels a day during the holiday season.",
    "New laptops are issued to staff every four years and old ones are donated to schools.",
    "The speaker's fabric cover is made from recycled plastic bottles.",
    "Employees receive a monthly public transport allowance of 50 dollars.",
    "The mobile app is available for iOS 15 and Android 10 or newer.",
    "Team leads hold a one-to-one meeting with each member every two weeks.",
    "Store opening hours are 9 a.m. to 6 p.m. on weekdays; the shop is closed on Sundays.",
    "Security badges must be worn visibly at all times inside the building.",
    "Coffee beans are roasted in small batches and shipped within a week of roasting.",
]

ZH_PAIRS = [
    ("买了东西不想要了，多久之内可以退？", "商品签收后30天内，未使用且包装完好的，可以申请退货。"),
    (
        "退款一般几天能到账？",
        "仓库收到退回的包裹后，款项会在5到7个工作日内原路退回到您的支付账户。",
    ),
    ("下单以后还能改收货地址吗？", "在包裹交给快递公司之前，您可以在订单页面修改收货地址。"),
    ("你们能寄到国外吗？", "我们目前支持配送到欧盟、英国、加拿大和日本，国际包裹一般需要6到12天。"),
    ("加急配送要多少钱？", "次日达快递每单收费12元，订单满150元免运费。"),
    (
        "忘记密码了怎么办？",
        "在登录页点击“忘记密码”，按照邮件中的链接设置新密码，链接一小时内有效。",
    ),
    (
        "为什么我的银行卡付款失败？",
        "支付失败通常是因为账单地址与卡片不符、卡片已过期，或银行拦截了网上交易。",
    ),
    ("咖啡机有保修吗？", "每台意式咖啡机都享受两年厂家质保，覆盖水泵、加热器和电子元件的故障。"),
    (
        "咖啡机多久需要除一次水垢？",
        "锅炉内会积累水垢，建议每三个月运行一次除垢程序，水质较硬的地区每月一次。",
    ),
    ("员工每年有几天年假？", "全职员工每年享有25天带薪年假，另加法定节假日；兼职员工按比例折算。"),
    (
        "生病请假要通知谁？",
        "如果生病，请在缺勤第一天上午9点前告知直属上级；连续请假超过三天需提供医生证明。",
    ),
    ("可以在家办公吗？", "经团队负责人事先同意，员工每周最多可以远程办公三天。"),
    ("出差的费用怎么报销？", "出差票据请在30天内提交到报销系统，审批通过后随下月工资一起发放。"),
    ("辞职需要提前多久通知？", "试用期结束后，任何一方解除劳动合同都须提前一个月书面通知。"),
    (
        "办公室的无线网怎么连？",
        "选择名为CorpNet的网络，用公司账号和密码登录；访客请使用单独的Guest网络。",
    ),
    (
        "打印机卡纸了怎么处理？",
        "打开前盖，轻轻取出卡住的纸张，合上前盖后按继续键；如果纸盒指示灯一直闪烁，请联系IT部门。",
    ),
    ("怎么申请VPN权限？", "远程访问公司网络需要安装指定的客户端，并通过IT服务门户申请VPN账号。"),
    (
        "收到可疑邮件应该怎么做？",
        "不要点击钓鱼邮件中的链接或打开附件，请转发到security@example.com后删除。",
    ),
    ("耳机充一次电能用多久？", "这款无线耳机充满电可连续播放30小时，充电10分钟可听3小时。"),
    ("这个耳机防水吗？", "耳机的防护等级为IPX4，可以防汗防溅，但不能浸入水中。"),
    ("音箱怎么和手机配对？", "长按蓝牙键三秒直到指示灯闪蓝光，然后在手机的蓝牙列表中选择该音箱。"),
    ("在哪里下载发票？", "订单发货后，可以在账户的“我的订单”页面下载PDF格式的发票。"),
    ("可以分期付款吗？", "结账时，满100元的订单可以分三期免息支付。"),
    ("你们有会员积分吗？", "会员每消费1元积1分，500积分可兑换10元优惠券。"),
    ("怎么取消订阅？", "您可以随时在“账户-订阅”中取消套餐，当前计费周期结束前仍可正常使用。"),
    (
        "我的个人信息会给别人吗？",
        "我们从不出售客户信息，只在完成订单所需时提供给支付机构和快递公司。",
    ),
    ("客服几点上班？", "客服团队的电话和在线咨询时间为周一至周六早上8点到晚上8点。"),
    (
        "收到的商品是坏的怎么办？",
        "如果商品在运输中损坏，请在48小时内发送商品和外箱的照片，我们会免费补发。",
    ),
    (
        "路由器的固件怎么升级？",
        "登录路由器管理页面，打开“系统-升级”，上传官网下载的最新固件，升级过程中不要断电。",
    ),
    ("多大年龄可以注册账号？", "用户须年满18周岁才能注册，未成年人需由家长代为持有账户。"),
]

ZH_DISTRACTORS = [
    "公司成立于1998年，最初在一间车库里创业，如今在全球拥有两千多名员工。",
    "礼品卡采用再生纸印刷，共有四种图案可选。",
    "咖啡机的接水盘可以放进洗碗机清洗，水箱请用手冲洗。",
    "年度员工晚会在每年十二月举行，每位员工可以携带一位家属。",
    "公司车库的停车位每年一月通过抽签分配。",
    "这款耳机有黑色、白色和午夜蓝三种颜色。",
    "我们的电子报每周四发送，介绍新品和季节优惠。",
    "员工食堂每天供应一道素菜，周五另有纯素选择。",
    "三楼的会议室可以通过日历预订，每次最长四小时。",
    "该路由器支持2.4GHz和5GHz双频，最多可连接64台设备。",
    "商品评价经过审核，两天内会显示在网站上。",
    "鹿特丹仓库在节日旺季每天处理约两万个包裹。",
    "公司每四年为员工更换一次笔记本电脑，旧电脑捐赠给学校。",
    "音箱的布面由回收塑料瓶制成。",
    "员工每月可领取50元公共交通补贴。",
    "手机应用支持iOS 15和Android 10及以上版本。",
    "团队负责人每两周与每位成员进行一次一对一沟通。",
    "门店营业时间为工作日上午9点至下午6点，周日休息。",
    "在办公楼内必须随时佩戴工牌。",
    "咖啡豆小批量烘焙，烘焙后一周内发货。",
]
